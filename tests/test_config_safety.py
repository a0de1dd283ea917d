"""A hostile user's configuration: values are data, never code; every mistake fails before the first epoch with
one line that names the key, the problem and the fix; the command line exits 2 and writes nothing."""

import ast
import os
import subprocess
import sys

import pytest
import torch

import recbole_crs
from recbole_crs import tuning
from recbole_crs.config import Config, parse_value
from recbole_crs.errors import CRSConfigError, CRSDataError, CRSInputError
from recbole_crs.quick_start import run_recbole_crs
from recbole_crs.run_plan import check_stages
from recbole_crs.validation import validate
from tiny_data import tiny_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
PACKAGE_DIR = os.path.dirname(os.path.realpath(recbole_crs.__file__))


def payload(marker):
    """Python that would create ``marker`` if anything evaluated it (and then be the number 1)."""
    return f"__import__('pathlib').Path({str(marker)!r}).touch() or 1"


def build(root, model="CRSPretrain", argv=(), **overrides):
    sys.argv = ["prog", *argv]  # the tiny_root fixture restores sys.argv afterwards
    return Config(model=model, dataset="tiny-crs", config_dict=tiny_config(root, **overrides))


def config_error(root, model="CRSPretrain", argv=(), **overrides):
    """The one-line message of the CRSConfigError that building and validating this config raises."""
    with pytest.raises(CRSConfigError) as error:
        validate(build(root, model, argv, **overrides))
    message = str(error.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------------------------------------------------
# No code from input
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, value",
    [
        ("0.1", 0.1), ("1e-4", 1e-4), ("true", True), ("False", False), ("None", None), ("~", None),
        ("[pretrain]", ["pretrain"]), ("[generator, finetune]", ["generator", "finetune"]),
        ("{n_layers: 1}", {"n_layers": 1}), ("0,1", (0, 1)), ("yes", "yes"), ("a: b", "a: b"),
        ("NDCG@10", "NDCG@10"), ("[a, b", "[a, b"), ("", ""),
    ],
)
def test_values_are_parsed_as_yaml_or_literals(text, value):
    assert parse_value(text) == value


def test_command_line_code_is_not_executed(tiny_root):
    marker = tiny_root / "pwned-argv"
    config = build(tiny_root, argv=[f"--epochs={payload(marker)}"])
    assert not marker.exists()
    assert config["epochs"] == payload(marker)  # kept as the string it is
    with pytest.raises(CRSConfigError, match=r"^epochs must be an integer >= 1, got \"__import__"):
        validate(config)
    assert not marker.exists()


def test_config_dict_code_is_not_executed(tiny_root):
    marker = tiny_root / "pwned-dict"
    message = config_error(tiny_root, learning_rate=payload(marker))
    assert message.startswith("learning_rate must be a number > 0") and not marker.exists()


def test_config_file_python_tags_are_refused(tiny_root):
    marker = tiny_root / "pwned-file"
    user_file = tiny_root / "evil.yaml"
    user_file.write_text(f"epochs: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(CRSConfigError, match=r"config file '.*evil.yaml' is not valid YAML at line 1"):
        Config("SASRec", "tiny-crs", config_file_list=[str(user_file)], config_dict={"data_path": str(tiny_root)})
    assert not marker.exists()


def test_params_file_code_is_not_executed(tiny_root):
    marker = tiny_root / "pwned-hyper"
    params_file = tiny_root / "evil.hyper"
    params_file.write_text(f'epochs choice ["{payload(marker)}"]\n')
    params = tuning.parse_params_file(str(params_file))  # a string choice: data
    fixed = {"model": "SASRec", "dataset": "tiny-crs", **tiny_config(tiny_root)}
    with pytest.raises(CRSConfigError, match="epochs must be an integer >= 1"):
        tuning.check_config(fixed, None, params=params)
    params_file.write_text(f"epochs choice [{payload(marker)}]\n")  # not a literal: refused when read
    with pytest.raises(CRSConfigError, match="choice values must be a Python list literal"):
        tuning.parse_params_file(str(params_file))
    assert not marker.exists()


def test_the_package_calls_no_eval_or_exec():
    calls = []
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                tree = ast.parse(open(path, encoding="utf-8").read())
                calls += [
                    f"{path}:{node.lineno}" for node in ast.walk(tree)
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec")
                ]
    assert calls == []


# ---------------------------------------------------------------------------------------------------------
# Silently wrong -> an error, or the right behaviour
# ---------------------------------------------------------------------------------------------------------
def test_misspelt_key_is_refused_with_a_suggestion(tiny_root):
    message = config_error(tiny_root, argv=["--epoch=1"])
    assert message == (
        "epoch (on the command line) is not a setting of RecBole, recbole-crs or CRSPretrain: did you mean "
        "'epochs'? Fix the name or remove it."
    )
    user_file = tiny_root / "user.yaml"
    user_file.write_text("mask_ratoi: 0.3\n")
    sys.argv = ["prog"]
    config = Config("CRSPretrain", "tiny-crs", config_file_list=[str(user_file)], config_dict=tiny_config(tiny_root))
    with pytest.raises(CRSConfigError, match=r"mask_ratoi \(in a config file\).*did you mean 'mask_ratio'"):
        validate(config)


def test_zero_epochs_is_refused(tiny_root):
    assert config_error(tiny_root, argv=["--epochs=0"]) == "epochs must be an integer >= 1, got 0: fix it, e.g. epochs: 20"


def test_empty_stage_list_is_refused(tiny_root):
    message = config_error(tiny_root, argv=["--crs_stages=[]"])
    assert message.startswith("crs_stages is empty, so there is nothing to run")


def test_bare_word_stages_are_a_list_of_stage_names(tiny_root):
    config = build(tiny_root, argv=["--crs_stages=[pretrain,finetune]"])
    assert config["crs_stages"] == ["pretrain", "finetune"]
    assert build(tiny_root, argv=["--crs_stages=[pretrain]"])["crs_stages"] == ["pretrain"]
    # a bare string is not iterated character by character
    message = config_error(tiny_root, argv=["--crs_stages=pretrain"])
    assert message.startswith("crs_stages must be a list of stages, got 'pretrain'") and "[pretrain]" in message
    with pytest.raises(CRSConfigError, match=r"pipeline order: write crs_stages: \[pretrain, finetune\]"):
        check_stages(["finetune", "pretrain"])


def test_more_than_one_process_outside_the_launcher_is_refused(tiny_root):
    with pytest.raises(CRSConfigError, match=r"^nproc=2 asks for several processes, which only the launcher") as error:
        build(tiny_root, argv=["--nproc=2"])
    assert "\n" not in str(error.value) and "run_recbole_crs.py --nproc=2" in str(error.value)
    with pytest.raises(CRSConfigError, match="world_size=4 asks for several processes"):
        build(tiny_root, world_size=4)
    with pytest.raises(CRSConfigError, match="nproc must be an integer >= 1, got 0"):
        build(tiny_root, nproc=0)


def test_pretrained_path_with_a_pretrain_stage_is_refused(tiny_root):
    checkpoint = tiny_root / "pre.pth"
    checkpoint.write_bytes(b"")
    message = config_error(tiny_root, pretrained_path=str(checkpoint))
    assert message.startswith("pretrained_path (") and "neither wins" in message
    assert "Remove pretrained_path" in message and "remove 'pretrain' from crs_stages" in message
    # fine-tuning only, from an existing file (and a generator for its history prior): fine
    validate(build(tiny_root, pretrained_path=str(checkpoint), generator_path=str(checkpoint), crs_stages=["finetune"]))
    message = config_error(tiny_root, pretrained_path=str(tiny_root / "missing.pth"), generator_path=str(checkpoint),
                           crs_stages=["finetune"])
    assert message.startswith("pretrained_path: no file")


def test_generator_path_is_checked_only_where_a_stage_reads_it(tiny_root):
    missing = str(tiny_root / "missing-generator.pth")
    # default stages with generator negatives: the generator stage loads generator_path
    assert config_error(tiny_root, generator_path=missing).startswith("generator_path: no file")
    # default stages, uniform negatives, no history prior: the generator stage is skipped, so the path is never read
    validate(build(tiny_root, generator_path=missing, negative_sampler="uniform", history_prior_weight=0))
    # ... but fine-tuning's history prior reads it
    message = config_error(tiny_root, generator_path=missing, negative_sampler="uniform")
    assert message.startswith("generator_path: no file")
    message = config_error(tiny_root, generator_path=missing, crs_stages=["finetune"])
    assert message.startswith("generator_path: no file")
    # listed explicitly, the generator stage runs (and reads the path) even with uniform negatives
    message = config_error(tiny_root, generator_path=missing, negative_sampler="uniform",
                           crs_stages=["generator", "pretrain", "finetune"])
    assert message.startswith("generator_path: no file")


def test_use_gpu_false_means_the_cpu(tiny_root, monkeypatch):
    assert build(tiny_root, use_gpu=False)["device"] == torch.device("cpu")  # cuda unavailable here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine, as RecBole sees it
    assert build(tiny_root, use_gpu=False)["device"] == torch.device("cpu")
    assert build(tiny_root, use_gpu=True)["device"].type == "cuda"


# ---------------------------------------------------------------------------------------------------------
# Late -> before the dataset, any training or any file
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def no_training(monkeypatch):
    """Records every training epoch and dataset build (there must be none)."""
    from recbole.trainer import Trainer

    from recbole_crs import quick_start
    from recbole_crs.trainer.stages import CRSGeneratorTrainer, CRSPretrainTrainer

    calls = []
    for cls in (Trainer, CRSGeneratorTrainer, CRSPretrainTrainer):
        monkeypatch.setattr(cls, "_train_epoch", lambda self, *a, **k: calls.append(type(self).__name__))
    monkeypatch.setattr(quick_start, "create_dataset", lambda config: calls.append("create_dataset"))
    return calls


@pytest.mark.parametrize(
    "overrides, start",
    [
        ({"crs_candidates": "confirmd"}, "crs_candidates 'confirmd' is not a candidate mode"),
        ({"mask_ratio": 1.5}, "mask_ratio must be a number in [0, 1], got 1.5"),
        ({"loss_type": "XYZ"}, "loss_type must be one of CE, BPR, got 'XYZ'"),
        ({"crs_test_modes": ["all", "confirmd"]}, "crs_test_modes: crs_candidates 'confirmd' is not a candidate"),
        ({"sad_substitute_rate": 1.0}, "sad_substitute_rate must be a number strictly between 0 and 1"),
        ({"finetune_rows": "some"}, "finetune_rows must be one of"),
        ({"crs_ties": "best"}, "crs_ties 'best' is not a tie rule"),
    ],
)
def test_late_errors_fail_before_any_training(tiny_root, no_training, overrides, start):
    config = tiny_config(tiny_root, **overrides)
    with pytest.raises(CRSConfigError) as error:
        run_recbole_crs(model="CRSPretrain", dataset="tiny-crs", config_dict=config)
    assert str(error.value).startswith(start) and "\n" not in str(error.value)
    assert no_training == []
    assert not os.path.exists(config["checkpoint_dir"])  # not even created
    assert not os.path.exists(tiny_root / "log")


def test_unwritable_checkpoint_dir_fails_before_any_training(tiny_root, no_training):
    blocker = tiny_root / "a-file"
    blocker.write_text("")
    config = tiny_config(tiny_root, checkpoint_dir=str(blocker / "saved"))
    with pytest.raises(CRSConfigError, match=r"^checkpoint_dir '.*a-file/saved' is not a writable folder .*: set "):
        run_recbole_crs(model="CRSPretrain", dataset="tiny-crs", config_dict=config)
    assert no_training == [] and not os.path.exists(tiny_root / "log")


def test_unreadable_data_path_fails_before_any_training(tiny_root, no_training):
    config = tiny_config(tiny_root, data_path=str(tiny_root / "nowhere"))
    with pytest.raises(CRSConfigError, match=r"^data_path: dataset 'tiny-crs' needs the readable file .*does not exist"):
        run_recbole_crs(model="SASRec", dataset="tiny-crs", config_dict=config)
    assert no_training == []


# ---------------------------------------------------------------------------------------------------------
# Cryptic -> one line naming the key, the problem and the fix
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argument, message",
    [
        ("--MAX_ITEM_LIST_LENGTH=0",
         "MAX_ITEM_LIST_LENGTH must be an integer >= 1, got 0: fix it, e.g. MAX_ITEM_LIST_LENGTH: 20"),
        ("--learning_rate=abc", "learning_rate must be a number > 0, got 'abc': fix it, e.g. learning_rate: 0.001"),
        ("--torch_threads=-1",
         "torch_threads must be an integer >= 1 (or ~ to keep torch's setting), got -1: fix it, e.g. torch_threads: 1"),
        # NumPy's seed range: a traceback from init_seed before
        ("--seed=-1", "seed must be an integer in [0, 4294967295], got -1: fix it, e.g. seed: 2020"),
        ("--seed=4294967296", "seed must be an integer in [0, 4294967295], got 4294967296: fix it, e.g. seed: 2020"),
    ],
)
def test_cryptic_values_get_one_line(tiny_root, argument, message):
    assert config_error(tiny_root, argv=[argument]) == message


def test_every_problem_is_reported_at_once(tiny_root):
    with pytest.raises(CRSConfigError) as error:
        validate(build(tiny_root, argv=["--epoch=1", "--mask_ratio=1.5", "--n_heads=3"]))
    lines = error.value.errors
    assert len(lines) == 3 and str(error.value) == "\n".join(lines)
    assert lines[0].startswith("epoch ") and lines[1].startswith("mask_ratio ")
    assert lines[2] == "hidden_size (8) must be a multiple of n_heads (3): change one, e.g. hidden_size: 9."


def test_data_errors_share_the_base_class():
    assert issubclass(CRSDataError, CRSInputError) and issubclass(CRSConfigError, CRSInputError)
    assert issubclass(CRSInputError, ValueError)


# ---------------------------------------------------------------------------------------------------------
# Command lines: exit status 2, `error:` on stderr, nothing written
# ---------------------------------------------------------------------------------------------------------
def test_command_line_exits_2_and_writes_nothing(tiny_root):
    before = set(os.listdir(tiny_root))
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "run_recbole_crs.py"), "--model=SASRec", "--dataset=tiny-crs",
         f"--data_path={tiny_root}", "--epoch=1"],
        cwd=tiny_root, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "error: epoch (on the command line) is not a setting" in result.stderr
    assert "did you mean 'epochs'" in result.stderr and "Traceback" not in result.stderr
    assert set(os.listdir(tiny_root)) == before  # no log/, no saved/, no dataset cache


@pytest.mark.parametrize("params, message", [
    ("learning_rate choice [0.01, -1]", "learning_rate must be a number > 0, got -1"),
    # RecBole's SASRec has the key: its KeyError came from the first trial that used the value
    ("hidden_act choice ['gelu', 'leaky']", "hidden_act must be one of gelu, relu, swish, tanh, sigmoid, got 'leaky'"),
])
def test_run_hyper_exits_2_before_any_trial(tiny_root, capsys, params, message):
    params_file = tiny_root / "p.hyper"
    params_file.write_text(params + "\n")
    argv = ["--model", "SASRec", "--dataset", "tiny-crs", "--params_file", str(params_file),
            f"--data_path={tiny_root}", f"--checkpoint_dir={tiny_root / 'saved'}"]
    with pytest.raises(SystemExit) as exit_info:
        tuning.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: params file: {message}" in err and "Traceback" not in err
    assert not os.path.exists(tiny_root / "hyper_SASRec.result")
