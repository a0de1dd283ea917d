"""What is refused before anything is trained: an unreadable dataset folder is not a missing
one, the candidate modes need full ranking and ``authors`` a candidate column, ``hidden_act`` is one of RecBole's
activations."""

import os
import pickle
import shutil
import tempfile

import pytest

from recbole_crs.config import Config
from recbole_crs.errors import CRSConfigError
from recbole_crs.validation import filesystem_errors, validate
from tiny_data import tiny_config, write_tiny_dataset

NOBODY = 65534


def in_unprivileged_child(function):
    """``function()`` computed in a forked child that file permissions apply to: run as root (which permissions do
    not stop) the child becomes the user nobody. Returns its result (or raises its exception)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            payload = pickle.dumps(("ok", function()))
        except BaseException as error:  # noqa: BLE001 (handed to the parent)
            payload = pickle.dumps(("error", repr(error)))
        with os.fdopen(write_end, "wb") as handle:
            handle.write(payload)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as handle:
        kind, value = pickle.loads(handle.read())
    os.waitpid(pid, 0)
    assert kind == "ok", value
    return value


@pytest.fixture
def open_root(monkeypatch):
    """A folder every user may enter (tmp_path's parents are private to root), removed afterwards."""
    root = tempfile.mkdtemp()
    os.chmod(root, 0o755)
    monkeypatch.chdir(root)
    yield root
    for folder, _, _ in os.walk(root):
        os.chmod(folder, 0o755)
    shutil.rmtree(root)


def test_an_unreadable_dataset_folder_is_not_reported_as_missing(open_root):
    folder = write_tiny_dataset(open_root)
    config = Config(model="SASRec", dataset="tiny-crs", config_dict=tiny_config(open_root))
    assert in_unprivileged_child(lambda: filesystem_errors(config, saved=False)) == []
    os.chmod(folder, 0o000)
    errors = in_unprivileged_child(lambda: filesystem_errors(config, saved=False))
    inter = os.path.join(folder, "tiny-crs.inter")
    assert errors == [
        f"data_path: dataset 'tiny-crs' needs the readable file '{inter}', which cannot be reached (Permission "
        f"denied): fix the permissions of '{folder}' and its files, or set --data_path to a readable copy."
    ]
    os.chmod(folder, 0o755)
    os.chmod(inter, 0o000)
    errors = in_unprivileged_child(lambda: filesystem_errors(config, saved=False))
    assert errors and "which is not readable (permission denied): fix the permissions" in errors[0]
    os.remove(inter)
    assert "which does not exist: set --data_path" in filesystem_errors(config, saved=False)[0]


def config_errors(root, model="SASRec", dataset="tiny-crs", **overrides):
    with pytest.raises(CRSConfigError) as error:
        validate(Config(model=model, dataset=dataset, config_dict=tiny_config(root, **overrides)), saved=False)
    return error.value.errors


@pytest.mark.parametrize("model", ["SASRec", "Pop"])
@pytest.mark.parametrize("mode, given", [("uni100", "valid: uni100, test: uni100"),
                                         ({"valid": "full", "test": "pop100"}, "test: pop100")])
def test_sampled_evaluation_is_refused_before_training(tiny_root, model, mode, given):
    """It failed at the first evaluation, after an epoch (Pop: a general model, evaluated per conversation too)."""
    eval_args = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": mode}
    assert config_errors(tiny_root, model, eval_args=eval_args) == [
        f"eval_args mode must be full for conversation-aware evaluation, got {{{given}}}: every candidate mode "
        "(crs_candidates, crs_test_modes) ranks all items and keeps each conversation's candidates, which sampled "
        "candidates cannot give. Set eval_args: {mode: full}."
    ]


def add_candidate_column(folder):
    path = os.path.join(folder, "tiny-crs.inter")
    header, *lines = open(path).read().splitlines()
    rows = [f"{line}\ti1 i2 i3" for line in lines]
    open(path, "w").write("\n".join([header + "\tcandidate_items:token_seq"] + rows) + "\n")


@pytest.mark.parametrize("overrides, keys", [
    ({"crs_candidates": "authors"}, "crs_candidates"),
    ({"crs_test_modes": ["all", "authors"]}, "crs_test_modes"),
    ({"crs_candidates": "authors", "crs_test_modes": ["authors"]}, "crs_candidates and crs_test_modes"),
])
def test_authors_mode_without_candidate_lists_is_refused_before_training(tiny_root, overrides, keys):
    """It failed at the first evaluation of fine-tuning, after the generator and pre-training stages."""
    inter = os.path.join(str(tiny_root), "tiny-crs", "tiny-crs.inter")
    assert config_errors(tiny_root, "CRSPretrain", **overrides) == [
        f"{keys}: 'authors' ranks each target against its row's 'candidate_items' list, but '{inter}' has no such "
        "column: convert the data with `python -m recbole_crs.data.convert ... --candidates 100`, or use the modes "
        "all, first, confirmed."
    ]
    add_candidate_column(os.path.dirname(inter))
    validate(Config(model="CRSPretrain", dataset="tiny-crs", config_dict=tiny_config(tiny_root, **overrides)),
             saved=False)
    load_col = {"inter": ["user_id", "item_id", "timestamp", "confirmed_attributes"], "item": ["item_id", "attributes"]}
    assert "has that column unloaded (load_col / unload_col)" in config_errors(
        tiny_root, "CRSPretrain", load_col=load_col, **overrides)[0]


def test_authors_mode_on_a_built_in_dataset_is_refused_without_building_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    errors = config_errors(tmp_path / "data", "Pop", "ml-100k-crs-targets", crs_candidates="authors")
    assert errors == [
        "crs_candidates: 'authors' ranks each target against its row's 'candidate_items' list, but the built-in "
        "dataset 'ml-100k-crs-targets' has no such column: convert the data with `python -m "
        "recbole_crs.data.convert ... --candidates 100`, or use the modes all, first, confirmed."
    ]
    assert not (tmp_path / "data").exists()


def test_a_run_refusing_authors_exits_2_with_one_line(tiny_root, capsys):
    import run_recbole_crs

    argv = ["--model=CRSPretrain", "--dataset=tiny-crs", f"--data_path={tiny_root}", "--crs_candidates=authors",
            f"--checkpoint_dir={tiny_root / 'saved'}"]
    assert run_recbole_crs.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: crs_candidates: 'authors' ranks each target") and err.count("\n") == 1
    assert not (tiny_root / "saved").exists() and not (tiny_root / "log").exists()


def test_hidden_act_is_one_of_recboles_activations_for_every_transformer(tiny_root):
    """RecBole's own models too (SASRec's yaml has the key): a bare KeyError from RecBole's table before."""
    from recbole.model.layers import FeedForward

    from recbole_crs.settings.key_rules import recbole_activations

    allowed = recbole_activations()
    assert allowed == ("gelu", "relu", "swish", "tanh", "sigmoid")
    for name in allowed:  # the table RecBole builds its feed-forward layers with
        FeedForward(8, 16, 0.1, name, 1e-12)
    with pytest.raises(KeyError):
        FeedForward(8, 16, 0.1, "leaky", 1e-12)
    for model in ("SASRec", "CRSPretrain"):
        assert config_errors(tiny_root, model, hidden_act="leaky") == [
            "hidden_act must be one of gelu, relu, swish, tanh, sigmoid, got 'leaky': fix it, e.g. hidden_act: gelu"
        ]
    validate(Config(model="BPR", dataset="tiny-crs", config_dict=tiny_config(tiny_root)), saved=False)

