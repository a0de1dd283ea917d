"""A user's mistake found during a run is one `error:` line with exit status 2, never a traceback (issue 15):
checkpoints named in generator_path / pretrained_path that do not fit, a dataloader cache that is not one, a disk
that refuses the checkpoint, a working folder that does not take RecBole's ./log."""

import contextlib
import glob
import os
import pickle
import resource
import subprocess
import sys

import pytest
import torch

import recbole_crs
from recbole_crs.artifacts import FINGERPRINT_KEY, atomic_torch_save, load_checkpoint
from recbole_crs.errors import CheckpointError, CRSInputError, OutputError
from test_artifacts import _Marker
from tiny_data import tiny_config, write_tiny_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(recbole_crs.__file__)))
STAGES = {"generator_epochs": 1, "pretrain_epochs": 1, "epochs": 1, "negative_sampler": "generator"}


@contextlib.contextmanager
def _in_folder(folder):
    saved_cwd, saved_argv = os.getcwd(), sys.argv
    os.chdir(folder)
    sys.argv = sys.argv[:1]
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny dataset, a generator and a pre-trained checkpoint of one epoch each, and the run's dataset."""
    from recbole.data import data_preparation

    from recbole_crs.quick_start import build_config, create_dataset, run_recbole_crs

    root = tmp_path_factory.mktemp("trained")
    write_tiny_dataset(str(root))
    config_dict = tiny_config(root, **STAGES)
    with _in_folder(root):
        run_recbole_crs("CRSPretrain", "tiny-crs", config_dict={**config_dict, "crs_stages": ["generator", "pretrain"]})
        config = build_config("CRSPretrain", "tiny-crs", config_dict=config_dict)
        dataset = create_dataset(config)
        data_preparation(config, dataset)  # builds the item attribute tables models read
    (generator,) = glob.glob(os.path.join(config_dict["checkpoint_dir"], "SASRec-*.pth"))
    (pretrained,) = glob.glob(os.path.join(config_dict["checkpoint_dir"], "CRSPretrain-*.pth"))
    return {"root": root, "config": config, "dataset": dataset, "generator": generator, "pretrained": pretrained}


def _variant(trained, key, change):
    """A copy of the ``key`` checkpoint (generator / pretrained) changed by ``change(checkpoint)``."""
    checkpoint = load_checkpoint(trained[key])
    change(checkpoint)
    path = os.path.join(trained["root"], f"{key}-{len(os.listdir(trained['root']))}.pth")
    atomic_torch_save(checkpoint, path)
    return path


def _not_a_checkpoint(trained, _):
    path = os.path.join(trained["root"], "notes.pth")
    with open(path, "w") as handle:
        handle.write("not a checkpoint\n")
    return path


def _truncated(trained, key):
    path = os.path.join(trained["root"], f"{key}-truncated.pth")
    with open(trained[key], "rb") as source, open(path, "wb") as target:
        data = source.read()
        target.write(data[: len(data) // 2])
    return path


def _corrupted(trained, key):
    """A zip whose directory is intact but whose pickle is not (bytes overwritten)."""
    path = os.path.join(trained["root"], f"{key}-corrupted.pth")
    data = bytearray(open(trained[key], "rb").read())
    data[200:400] = b"A" * 200
    with open(path, "wb") as target:
        target.write(data)
    return path


def _refused_pickle(trained, _):
    path = os.path.join(trained["root"], "payload.pth")
    torch.save({"config": _Marker(os.path.join(trained["root"], "pwned")), "state_dict": {}}, path)
    return path


def _edit_config(**values):
    return lambda checkpoint: checkpoint["config"].update(values)


def _other_items(checkpoint):
    checkpoint[FINGERPRINT_KEY]["items"] = "0" * 32


def _shorter(prefix):
    def change(checkpoint):
        name = f"{prefix}position_embedding.weight"
        checkpoint["state_dict"][name] = checkpoint["state_dict"][name][:3]
    return change


def _drop(*names):
    def change(checkpoint):
        for name in names:
            del checkpoint["state_dict"][name]
    return change


def _wider_items(checkpoint):
    weight = checkpoint["state_dict"]["encoder.item_embedding.weight"]
    checkpoint["state_dict"]["encoder.item_embedding.weight"] = torch.zeros(weight.shape[0], weight.shape[1] * 2)


GENERATOR_CASES = [
    (_not_a_checkpoint, r"is not a checkpoint: it is not a zip-format file"),
    (_truncated, r"is not a checkpoint: it is not a zip-format file"),
    (_corrupted, r"^Could not read checkpoint '.*': [^\n]*The file is not a checkpoint written by RecBole"),
    (_refused_pickle, r"references io.open, which no RecBole"),
    (_edit_config(model="Pop"), r"holds a Pop model; the negative generator must be a SASRec checkpoint"),
    (_edit_config(dataset="other"), r"was trained on dataset 'other', not 'tiny-crs'"),
    (_other_items, r"was trained on other item ids than dataset 'tiny-crs'"),
    (_shorter(""), r"handles sequences of at most 3 items but MAX_ITEM_LIST_LENGTH is 5"),
    (_drop("item_embedding.weight"), r"holds no SASRec weights"),
    (_edit_config(n_layers=2), r"does not fit the SASRec its config describes"),
]
PRETRAINED_CASES = [
    (_not_a_checkpoint, r"is not a checkpoint: it is not a zip-format file"),
    (_refused_pickle, r"references io.open, which no RecBole"),
    (_edit_config(dataset="other"), r"was pre-trained on dataset 'other', not 'tiny-crs'"),
    (_other_items, r"was trained on other item ids than dataset 'tiny-crs'"),
    (lambda c: c.update(state_dict={k: v for k, v in c["state_dict"].items() if not k.startswith("encoder.")}),
     r"holds no encoder weights"),
    (_wider_items, r"encoder tensor 'item_embedding.weight' has shape \(8, 16\), this model \(8, 8\)"),
    (_shorter("encoder."), r"has 3 positions \(MAX_ITEM_LIST_LENGTH \+ 1\) but this model has 6"),
]


def _checkpoint_file(trained, key, make):
    if make in (_not_a_checkpoint, _truncated, _corrupted, _refused_pickle):
        return make(trained, key)
    return _variant(trained, key, make)


@pytest.mark.parametrize("make, message", GENERATOR_CASES)
def test_a_generator_path_that_does_not_fit_is_a_checkpoint_error(trained, make, message):
    from recbole_crs.model.negative_generator import NegativeGenerator

    path = _checkpoint_file(trained, "generator", make)
    with pytest.raises(CheckpointError, match=message):
        NegativeGenerator.from_checkpoint(path, trained["config"], trained["dataset"])
    assert not os.path.exists(os.path.join(trained["root"], "pwned"))


@pytest.mark.parametrize("make, message", PRETRAINED_CASES)
def test_a_pretrained_path_that_does_not_fit_is_a_checkpoint_error(trained, make, message):
    from recbole_crs.model.crsfinetune import CRSFinetune
    from recbole_crs.model.generator_sasrec import stage_config

    path = _checkpoint_file(trained, "pretrained", make)
    model = CRSFinetune(stage_config(trained["config"], model="CRSFinetune"), trained["dataset"])
    with pytest.raises(CheckpointError, match=message):
        model.load_pretrained(path)


def test_the_checkpoint_errors_are_input_errors():
    from recbole_crs.errors import CheckpointMismatchError, PretrainedCheckpointError, UnsafeCheckpointError

    for error in (CheckpointMismatchError, UnsafeCheckpointError, PretrainedCheckpointError):
        assert issubclass(error, CheckpointError) and issubclass(error, CRSInputError)


def test_a_missing_checkpoint_is_an_input_error(tmp_path):
    """A model file that is not there is the user's mistake (one error line), and still a FileNotFoundError."""
    with pytest.raises(CheckpointError, match="does not exist") as raised:
        load_checkpoint(str(tmp_path / "missing.pth"))
    assert isinstance(raised.value, FileNotFoundError)


@pytest.mark.parametrize("change, message", [
    (_edit_config(dataset="other"), r"was trained on dataset 'other', not 'tiny-crs'"),
    (_edit_config(model="BPR"), r"was written by model BPR, not SASRec"),
])
def test_a_checkpoint_of_other_data_or_another_model_cannot_be_resumed(trained, change, message):
    """A trainer refuses a checkpoint of another dataset or model as an input error, not a bare ValueError."""
    from recbole_crs.model.generator_sasrec import GeneratorSASRec, generator_config
    from recbole_crs.trainer.stages import CRSGeneratorTrainer

    config = generator_config(trained["config"])
    with _in_folder(trained["root"]):  # RecBole's trainer writes ./log_tensorboard: not into the repository
        trainer = CRSGeneratorTrainer(config, GeneratorSASRec(config, trained["dataset"]))
    with pytest.raises(CheckpointError, match=message):
        trainer.resume_checkpoint(_variant(trained, "generator", change))


def _main(root, *argv):
    import run_recbole_crs

    with _in_folder(root):
        return run_recbole_crs.main(["--dataset=tiny-crs", f"--data_path={root}", "--epochs=1",
                                     "--generator_epochs=1", "--pretrain_epochs=1", "--hidden_size=8",
                                     "--inner_size=16", "--n_layers=1", "--n_heads=1", "--MAX_ITEM_LIST_LENGTH=5",
                                     "--use_gpu=False", "--state=WARNING", "--show_progress=False", *argv])


def _one_error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("key, stages", [("generator_path", "[generator,pretrain]"), ("pretrained_path", "[finetune]")])
def test_a_checkpoint_that_does_not_fit_ends_the_command_with_one_line(trained, key, stages, capsys):
    path = _variant(trained, "generator" if key == "generator_path" else "pretrained", _edit_config(dataset="other"))
    prior = [] if key == "generator_path" else [f"--generator_path={trained['generator']}"]  # the history prior's
    status = _main(trained["root"], "--model=CRSPretrain", f"--crs_stages={stages}", f"--{key}={path}", *prior,
                   f"--checkpoint_dir={trained['root'] / 'cli'}")
    assert status == 2
    assert "trained on dataset 'other', not 'tiny-crs'" in _one_error_line(capsys)


# ---------------------------------------------------------------------------------------------- caches
CACHES = {
    "truncated": (lambda trained: pickle.dumps(list(range(1000)))[:50],
                  r"error: cannot read dataloaders_save_path '.*cache.pth': UnpicklingError: pickle data was truncated"),
    "a-checkpoint": (lambda trained: open(trained["generator"], "rb").read(),  # pickle's message spans 2 lines
                     r"error: cannot read dataloaders_save_path '.*cache.pth': UnpicklingError: .*Delete it"),
    "other-pickle": (lambda trained: pickle.dumps({"not": "loaders"}),
                     r"error: dataloaders_save_path '.*cache.pth' does not hold the train, valid"),
}


@pytest.mark.parametrize("case", sorted(CACHES))
def test_a_dataloaders_save_path_that_is_no_cache_is_one_line(trained, case, capsys):
    import re

    content, message = CACHES[case]
    path = trained["root"] / "cache.pth"
    path.write_bytes(content(trained))
    status = _main(trained["root"], "--model=SASRec", f"--dataloaders_save_path={path}",
                   f"--checkpoint_dir={trained['root'] / 'cli'}")
    assert status == 2 and re.match(message, _one_error_line(capsys))


# ---------------------------------------------------------------------------------------------- writing
def test_a_full_disk_ends_the_run_with_one_line_and_keeps_the_previous_checkpoint(trained, tmp_path):
    """`ulimit -f`: the kernel refuses a file above the size limit (Python ignores SIGXFSZ, so the write raises
    EFBIG), as it refuses any write on a full disk."""
    checkpoint_dir = tmp_path / "saved"
    checkpoint_dir.mkdir()
    previous = checkpoint_dir / "previous.pth"
    previous.write_bytes(open(trained["generator"], "rb").read())
    before = previous.read_bytes()
    assert len(before) > 16_000  # a checkpoint of this size cannot be written under the limit below

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000))  # bytes; the log and tensorboard files fit

    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "run_recbole_crs.py"), "--model=SASRec", "--dataset=tiny-crs",
         f"--data_path={trained['root']}", f"--checkpoint_dir={checkpoint_dir}", "--epochs=1", "--hidden_size=8",
         "--inner_size=16", "--n_layers=1", "--n_heads=1", "--MAX_ITEM_LIST_LENGTH=5", "--use_gpu=False",
         "--state=WARNING", "--show_progress=False"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, preexec_fn=limit_file_size,
        env={**os.environ, "PYTHONPATH": REPO, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"error: cannot write the checkpoint '{checkpoint_dir}{os.sep}SASRec-")
    assert "(File too large)" in lines[0] and "any earlier file of that name is unchanged" in lines[0]
    assert os.listdir(checkpoint_dir) == ["previous.pth"]  # no new checkpoint, no temporary file
    assert previous.read_bytes() == before and load_checkpoint(previous)["state_dict"]


@pytest.mark.parametrize("occupied", ["log", "log_tensorboard"])
def test_a_working_folder_that_cannot_hold_the_logs_is_one_line(trained, tmp_path, occupied, capsys):
    """RecBole writes ./log and ./log_tensorboard where the run starts; a file of that name stands for a folder
    the user cannot write to (the tests may run as root, who writes anywhere)."""
    (tmp_path / occupied).write_text("")
    with _in_folder(tmp_path):
        import run_recbole_crs

        status = run_recbole_crs.main(["--model=Pop", "--dataset=tiny-crs", f"--data_path={trained['root']}",
                                       f"--checkpoint_dir={tmp_path / 'saved'}", "--use_gpu=False"])
    assert status == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: cannot write RecBole's log folder '{tmp_path}{os.sep}{occupied}")
    assert "run from a folder you can write to" in line


def test_a_write_error_is_an_input_error():
    assert issubclass(OutputError, CRSInputError)


# ---------------------------------------------------------------------------------------------- other entry points
def test_the_benchmark_reports_an_input_error_before_its_runs_in_one_line(trained, tmp_path, capsys):
    """`--set nproc=2`: the config refuses it when the benchmark resolves each run's config, before any run."""
    from recbole_crs import benchmark
    from test_benchmark import write_suite

    suite = write_suite(tmp_path / "suite.yaml", {"Pop": {"model": "Pop"}})
    with _in_folder(tmp_path):
        status = benchmark.main(["--suite", suite, "--data-path", str(trained["root"]), "--out", str(tmp_path / "out"),
                                 "--set", "nproc=2"])
    assert status == 2
    assert _one_error_line(capsys).startswith("error: tiny-crs Pop: nproc=2 asks for several processes, which only "
                                              "the launcher")


def test_run_hyper_reports_a_working_folder_without_room_for_the_logs_in_one_line(trained, tmp_path, capsys):
    from recbole_crs.tuning.cli import main

    (tmp_path / "log_tensorboard").write_text("")
    params = tmp_path / "p.hyper"
    params.write_text("learning_rate choice [0.01]\n")
    with _in_folder(tmp_path), pytest.raises(SystemExit) as exit_info:
        main(["--model", "Pop", "--dataset", "tiny-crs", "--params_file", str(params),
              f"--data_path={trained['root']}", f"--checkpoint_dir={tmp_path / 'saved'}", "--use_gpu=False"])
    assert exit_info.value.code == 2
    assert _one_error_line(capsys).startswith("error: cannot write RecBole's log folder")
