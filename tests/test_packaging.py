"""Packaging: the wheel ships properties/ and the config finds it (the full check is .ci/check_install)."""

import ast
import fnmatch
import os

from recbole_crs import config as crs_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup_constant(name):
    with open(os.path.join(REPO_ROOT, "setup.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"setup.py has no {name}")


def test_setup_ships_every_file_of_properties():
    patterns = _setup_constant("PROPERTIES_FILES")
    root = os.path.join(REPO_ROOT, "properties")
    files = [os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
             for folder, _, names in os.walk(root) for name in names]
    assert files
    # setuptools' package_data globs: '*' does not cross '/'.
    missed = [path for path in files
              if not any(fnmatch.fnmatch(path, p) and path.count("/") == p.count("/") for p in patterns)]
    assert missed == [], f"add patterns to PROPERTIES_FILES in setup.py for {missed}"


def test_a_checkout_reads_the_top_level_properties():
    assert crs_config.properties_dir() == os.path.join(os.path.realpath(REPO_ROOT), "properties")


def test_an_installed_copy_inside_the_package_wins(tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "recbole_crs"
    (package / "properties").mkdir(parents=True)
    (package / "properties" / "overall.yaml").write_text("{}\n")
    (tmp_path / "site-packages" / "properties").mkdir()  # another distribution's folder is never read
    monkeypatch.setattr(crs_config, "__file__", str(package / "config.py"))
    assert crs_config.properties_dir() == str(package / "properties")


def test_ci_runs_the_readme_test_commands_verbatim():
    with open(os.path.join(REPO_ROOT, ".ci", "run")) as f:
        commands = [line.strip() for line in f
                    if line.strip() and not line.startswith(("#", "set ", "cd "))]
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        readme_lines = {line.strip() for line in f}
    assert commands and [c for c in commands if c not in readme_lines] == []
