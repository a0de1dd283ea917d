from setuptools import find_packages, setup

setup(
    name="recbole-crs",
    version="0.1.0",
    description="Pre-trained conversational recommendation (Zhou et al., CIKM 2020) as a RecBole plugin",
    packages=find_packages(include=["recbole_crs", "recbole_crs.*"]),
    python_requires=">=3.11,<3.12",
    install_requires=[
        # recbole 1.2.1 is the version this plugin is written and tested against.
        "recbole==1.2.1",
        # CPU wheel available locally; newer/unpinned torch pulls a multi-GB CUDA build.
        "torch==2.13.0",
        # recbole 1.2.1 breaks on numpy 2 (np.float_, np.bool8 in ray's logger).
        "numpy<2",
        # pandas 3 breaks RecBole's token_seq remapping (Series.agg(len)).
        "pandas<3",
        # scipy 1.13 removed dok_matrix._update used by RecBole's graph models.
        "scipy<1.13",
        # ray 2.6.3 (pinned by recbole) imports pkg_resources, gone in setuptools 81.
        "setuptools<81",
        # hyperopt >= 0.2.7 breaks RecBole's exhaustive search (RandomState.integers).
        "hyperopt==0.2.5",
        "ray[tune]==2.6.3",
        # pyarrow 26 (pulled in by ray[tune]) refuses numpy < 2; ray imports it when it serializes anything.
        "pyarrow<26",
        "matplotlib<4",
    ],
    extras_require={"test": ["pytest>=8"]},
)
