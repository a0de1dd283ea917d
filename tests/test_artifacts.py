"""Checkpoints and caches survive kills, never collide, never unpickle what the user did not name, and refuse
data they were not trained on (recbole_crs.artifacts, recbole_crs.artifacts.load_checkpoint)."""

import glob
import os
import pickle
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

import recbole_crs
from recbole_crs.artifacts import atomic_torch_save, dataset_fingerprint, load_checkpoint
from recbole_crs.errors import CheckpointMismatchError, OutputError, UnsafeCheckpointError
from recbole_crs.runtime import atomic_write_text, clean_stale_temporaries
from tiny_data import ITEM_ATTRIBUTES, USER_SEQUENCES, tiny_config, write_tiny_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(recbole_crs.__file__)))


def _tiny_trainer(root, model="SASRec", **overrides):
    from recbole.data import data_preparation

    from recbole_crs.config import Config
    from recbole_crs.quick_start import build_model, create_dataset
    from recbole_crs.trainer import get_trainer

    config = Config(model, "tiny-crs", config_dict=tiny_config(root, epochs=1, **overrides))
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    model = build_model(config, train)
    return get_trainer(config["MODEL_TYPE"], config["model"])(config, model), dataset, train, valid, test


class _Marker:
    """A pickle that creates a file when it is unpickled (stands for any code a pickle can run)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


# ---------------------------------------------------------------------------------------------- atomic saves
def test_kill_during_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "model.pth"
    good = {"state_dict": {"w": torch.arange(10.0)}}
    atomic_torch_save(good, path)
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {REPO!r})
        from recbole_crs.runtime import atomic_write

        def write(handle):
            handle.write(b"PK" + b"x" * (1 << 20))  # a partial, large checkpoint
            handle.flush()
            print("writing", flush=True)
            time.sleep(60)

        atomic_write({str(path)!r}, write)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], good["state_dict"]["w"])
    leftovers = glob.glob(f"{path}.tmp-{child.pid}-*")
    assert len(leftovers) == 1 and os.path.getsize(leftovers[0]) > 1 << 20  # the partial file has its own name
    # the next run in that folder removes what the dead process left
    assert clean_stale_temporaries(str(tmp_path)) == leftovers
    assert sorted(os.listdir(tmp_path)) == ["model.pth"]


def test_failed_save_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.pth"
    atomic_torch_save({"epoch": 1}, path)

    def die_half_way(obj, handle, **kwargs):
        handle.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", die_half_way)
    with pytest.raises(OutputError, match=r"cannot write the checkpoint '.*model.pth' \(No space left on device\)"):
        atomic_torch_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["model.pth"]


def test_temporaries_of_live_processes_and_this_one_are_kept(tmp_path):
    own = tmp_path / f"a.pth.tmp-{os.getpid()}-ab"
    parent = tmp_path / f"b.pth.tmp-{os.getppid()}-cd"
    for path in (own, parent):
        path.write_bytes(b"x")
    assert clean_stale_temporaries(str(tmp_path)) == []
    assert own.exists() and parent.exists()


def test_a_rewrite_removes_the_temporaries_that_killed_writers_of_the_file_left(tmp_path):
    """A benchmark's results.json, a tuning result file, a conversation's report: a rerun that writes the file again
    removes the temporary files of writers killed mid-write (they stayed forever)."""
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    stale = tmp_path / f"results.json.tmp-{dead}-0a1b2c3d"
    others = [tmp_path / f"results.md.tmp-{dead}-0a1b2c3d",  # another file's: left to its own writer
              tmp_path / f"results.json.tmp-{os.getppid()}-2c3d4e5f"]  # a live writer's
    for path in [stale, *others]:
        path.write_text("partial")
    atomic_write_text(tmp_path / "results.json", "{}\n")
    assert sorted(os.listdir(tmp_path)) == sorted(["results.json"] + [path.name for path in others])


def test_trainer_cleans_leftovers_of_dead_runs(tiny_root):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    os.makedirs(tiny_root / "saved", exist_ok=True)
    leftover = tiny_root / "saved" / f"SASRec-old.pth.tmp-{int(dead.stdout)}-0a1b2c3d"
    leftover.write_bytes(b"partial")
    _tiny_trainer(tiny_root)
    assert not leftover.exists()


# ---------------------------------------------------------------------------------------------- names, format
def test_two_trainers_created_in_the_same_second_get_different_files(tiny_root):
    first, *_ = _tiny_trainer(tiny_root)
    second, *_ = _tiny_trainer(tiny_root)
    assert first.saved_model_file != second.saved_model_file
    assert f"-{os.getpid()}-" in os.path.basename(first.saved_model_file)


def test_recbole_trainers_save_atomically_as_plain_data_with_the_fingerprint(tiny_root):
    trainer, dataset, train, valid, _ = _tiny_trainer(tiny_root)
    trainer.fit(train, valid, verbose=False, saved=True)
    checkpoint = torch.load(trainer.saved_model_file, weights_only=True)  # no pickled objects inside
    assert checkpoint["config"]["dataset"] == "tiny-crs"
    assert checkpoint["crs_fingerprint"] == dataset_fingerprint(dataset)
    assert [name for name in os.listdir(tiny_root / "saved") if ".tmp-" in name] == []


def test_plain_checkpoints_resume(tiny_root):
    trainer, _, train, valid, _ = _tiny_trainer(tiny_root)
    trainer.fit(train, valid, verbose=False, saved=True)
    resumed, *_ = _tiny_trainer(tiny_root)
    resumed.resume_checkpoint(trainer.saved_model_file)
    assert resumed.start_epoch == 1


# ---------------------------------------------------------------------------------------------- pickles
def test_planted_pickle_at_the_default_dataloader_cache_is_not_loaded(tiny_root):
    from recbole.data import data_preparation

    from recbole_crs.config import Config
    from recbole_crs.quick_start import create_dataset

    marker = tiny_root / "pwned"
    os.makedirs(tiny_root / "saved", exist_ok=True)
    for name in ("tiny-crs-for-SASRec-dataloader.pth", "tiny-crs-SequentialDataset.pth"):
        with open(tiny_root / "saved" / name, "wb") as handle:
            pickle.dump(_Marker(str(marker)), handle)
    config = Config("SASRec", "tiny-crs", config_dict=tiny_config(tiny_root))
    data_preparation(config, create_dataset(config))
    import recbole.data

    recbole.data.create_dataset(config)  # RecBole's own create_dataset: its default dataset cache too
    assert not marker.exists()


def test_dataloader_cache_is_saved_keyed_and_read_only_when_named(tiny_root):
    from recbole.data import data_preparation

    from recbole_crs.config import Config
    from recbole_crs.quick_start import create_dataset

    config = Config("SASRec", "tiny-crs", config_dict=tiny_config(tiny_root, save_dataloaders=True))
    train, _, _ = data_preparation(config, create_dataset(config))
    assert train.generator is not None  # saving no longer breaks the live loaders
    (saved,) = glob.glob(str(tiny_root / "saved" / "tiny-crs-for-SASRec-dataloader-*.pth"))
    named = Config("SASRec", "tiny-crs", config_dict=tiny_config(tiny_root, dataloaders_save_path=saved))
    from recbole_crs.artifacts import safe_load_split_dataloaders

    create_dataset(named)  # as data_preparation sees it: the dataset has set its config (aliases) first
    assert safe_load_split_dataloaders(named) is not None
    # the data changes: the named cache is stale and is not used
    sequences = {u: list(rows) for u, rows in USER_SEQUENCES.items()}
    sequences["u1"] = sequences["u1"][:-1]
    write_tiny_dataset(str(tiny_root), user_sequences=sequences)
    assert safe_load_split_dataloaders(named) is None


def test_truncated_named_cache_names_its_file(tiny_root):
    from recbole_crs.artifacts import safe_load_split_dataloaders
    from recbole_crs.config import Config

    path = tiny_root / "cache.pth"
    path.write_bytes(pickle.dumps(list(range(1000)))[:50])
    config = Config("SASRec", "tiny-crs", config_dict=tiny_config(tiny_root, dataloaders_save_path=str(path)))
    with pytest.raises(ValueError, match=r"cannot read dataloaders_save_path '.*cache.pth': UnpicklingError"):
        safe_load_split_dataloaders(config)


def test_checkpoint_payloads_never_run(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"config": _Marker(str(marker))}, tmp_path / "zip.pth")  # zip-format torch file with a payload
    with pytest.raises(UnsafeCheckpointError, match=r"references io.open, which no RecBole"):
        load_checkpoint(tmp_path / "zip.pth")
    with open(tmp_path / "raw.pth", "wb") as handle:  # a raw pickle
        pickle.dump(_Marker(str(marker)), handle)
    with pytest.raises(ValueError, match=r"is not a checkpoint: it is not a zip-format file"):
        load_checkpoint(tmp_path / "raw.pth")
    assert not marker.exists()


def test_recbole_format_checkpoints_still_load(tiny_root):
    from recbole_crs.config import Config

    config = Config("SASRec", "tiny-crs", config_dict=tiny_config(tiny_root))
    torch.save({"config": config, "state_dict": {"w": torch.ones(2)}}, tiny_root / "recbole.pth", pickle_protocol=4)
    loaded = load_checkpoint(tiny_root / "recbole.pth")
    assert loaded["config"]["dataset"] == "tiny-crs" and torch.equal(loaded["state_dict"]["w"], torch.ones(2))


# ---------------------------------------------------------------------------------------------- fingerprints
def test_generator_from_other_item_ids_is_refused_before_the_model_is_built(tiny_root, tmp_path, monkeypatch):
    """Same dataset name, same item count, other item ids: refused, and SASRec is never constructed."""
    import recbole_crs.model.negative_generator as negative_generator
    from recbole.data import data_preparation

    from recbole_crs.config import Config
    from recbole_crs.model.negative_generator import NegativeGenerator
    from recbole_crs.pipeline import train_generator
    from recbole_crs.quick_start import create_dataset

    renamed = {f"x{item}": attributes for item, attributes in ITEM_ATTRIBUTES.items()}
    sequences = {u: [(f"x{i}", c, [f"x{r}" for r in rej]) for i, c, rej in rows] for u, rows in USER_SEQUENCES.items()}
    other_root = tmp_path / "other"
    write_tiny_dataset(str(other_root), item_attributes=renamed, user_sequences=sequences)
    overrides = {"model": "CRSPretrain", "crs_stages": ["generator"], "generator_epochs": 1}
    other_config = Config("CRSPretrain", "tiny-crs", config_dict=tiny_config(other_root, **overrides))
    other = create_dataset(other_config)
    train, valid, _ = data_preparation(other_config, other)
    trainer, *_ = train_generator(other_config, other, train, valid, verbose=False)

    config = Config("CRSPretrain", "tiny-crs", config_dict=tiny_config(tiny_root, **overrides))
    dataset = create_dataset(config)
    assert dataset.item_num == other.item_num

    def never(*args, **kwargs):
        raise AssertionError("SASRec was built before the checkpoint was checked")

    monkeypatch.setattr(negative_generator, "GeneratorSASRec", never)
    with pytest.raises(CheckpointMismatchError, match=r"generator_path '.*' was trained on other item ids"):
        NegativeGenerator.from_checkpoint(trainer.saved_model_file, config, dataset)


def test_load_data_and_model_refuses_changed_data(tiny_config_dict, tiny_root):
    from recbole_crs.quick_start import load_data_and_model, run_recbole_crs

    run_recbole_crs(model="SASRec", dataset="tiny-crs", config_dict={**tiny_config_dict, "epochs": 1})
    (checkpoint,) = glob.glob(os.path.join(tiny_config_dict["checkpoint_dir"], "SASRec-*.pth"))
    load_data_and_model(checkpoint)  # unchanged data: fine
    sequences = {u: list(rows) for u, rows in USER_SEQUENCES.items()}
    sequences["u4"] = sequences["u4"][:3] + sequences["u4"][:2:-1]  # u4's test row was its valid row: same item ids
    write_tiny_dataset(str(tiny_root), user_sequences=sequences)
    with pytest.raises(CheckpointMismatchError, match=r"trained on other contents of dataset 'tiny-crs'.*retrain"):
        load_data_and_model(checkpoint)
