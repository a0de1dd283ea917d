"""recbole-crs packaging.

The yaml defaults live in the top-level ``properties/`` folder (the one source of truth, edited there). A wheel
ships them inside the package as ``recbole_crs/properties/`` (the ``package_dir`` mapping below), like RecBole
and RecBole-GNN ship theirs; ``recbole_crs.config.properties_dir`` finds either copy. The entry scripts are
installed on the PATH under their own names, so ``run_recbole_crs.py --model Pop`` works after ``pip install .``
from any folder, and ``python run_recbole_crs.py`` keeps working from the repository root.
"""

from setuptools import find_packages, setup

# Every file under properties/ (tests/test_packaging.py checks that these patterns cover the folder).
PROPERTIES_FILES = ["*.yaml", "model/*.yaml", "dataset/*.yaml", "hyper/*.hyper"]

setup(
    name="recbole-crs",
    version="0.1.0",
    description="Pre-trained conversational recommendation (Zhou et al., CIKM 2020) as a RecBole plugin",
    packages=find_packages(include=["recbole_crs", "recbole_crs.*"]) + ["recbole_crs.properties"],
    package_dir={"recbole_crs.properties": "properties"},
    package_data={"recbole_crs.properties": PROPERTIES_FILES},
    scripts=["run_recbole_crs.py", "run_hyper.py"],
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
    extras_require={
        # import-linter: `lint-imports` checks the floors of .importlinter (docs/architecture.md) in CI.
        "test": ["pytest>=8", "import-linter==2.1"],
    },
)
