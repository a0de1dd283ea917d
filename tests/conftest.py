import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from tiny_data import tiny_config, write_tiny_dataset  # noqa: E402


@pytest.fixture
def tiny_root(tmp_path, monkeypatch):
    """A tmp dir holding the tiny dataset; the cwd moves there so RecBole's ./log stays out of the repo."""
    write_tiny_dataset(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    # RecBole reads --key=value from sys.argv; keep pytest's own flags out of the config.
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
    return tmp_path


@pytest.fixture
def tiny_config_dict(tiny_root):
    return tiny_config(tiny_root)
