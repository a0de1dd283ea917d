"""run_hyper.py (recbole_crs.tuning): params files, command line, two-trial searches with HyperTuning and Ray Tune."""

import math
import os
import time

import pytest
import yaml

from recbole_crs.tuning import cli
from recbole_crs.tuning.hyperopt_backend import hyperopt_space, hyperopt_tune
from recbole_crs.tuning.objective import TrialObjective, check_config
from recbole_crs.tuning.params import grid_size, parse_params_file, resolve_algo
from recbole_crs.tuning.ray_backend import ray_space
from recbole_crs.tuning.results import write_result_file
from tiny_data import tiny_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
HYPER_DIR = os.path.join(REPO_ROOT, "properties", "hyper")
LEARNING_RATES = [0.01, 0.001]


def _write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


# ---------------------------------------------------------------------------------------------------------
# Params files
# ---------------------------------------------------------------------------------------------------------
def test_params_file_types_comments_and_natural_log_bounds(tmp_path):
    path = _write(
        tmp_path / "p.hyper",
        "# a comment line\n\n"
        "learning_rate loguniform -9.21,-4.61   # ln(1e-4), ln(1e-2)\n"
        "hidden_size choice [32, 64]\n"
        "loss_type choice ['CE', 'BPR']\n"
        "dropout uniform 0.1,0.5\n"
        "n_layers quniform 1,4,1\n",
    )
    params = {p.name: p for p in parse_params_file(path)}
    assert list(params) == ["learning_rate", "hidden_size", "loss_type", "dropout", "n_layers"]
    assert params["hidden_size"].values == (32, 64)
    assert params["loss_type"].values == ("CE", "BPR")
    assert params["learning_rate"].values == (-9.21, -4.61)
    assert resolve_algo(None, list(params.values())) == "random"

    space = ray_space(list(params.values()))
    assert space["learning_rate"].lower == pytest.approx(math.exp(-9.21))
    assert space["learning_rate"].upper == pytest.approx(math.exp(-4.61))
    assert space["hidden_size"].categories == [32, 64]
    samples = [space["n_layers"].sample() for _ in range(20)]
    assert all(isinstance(s, int) and 1 <= s <= 4 for s in samples)

    from hyperopt.pyll import stochastic

    sample = stochastic.sample(hyperopt_space(list(params.values())))
    assert math.exp(-9.21) <= sample["learning_rate"] <= math.exp(-4.61)
    assert sample["hidden_size"] in (32, 64) and isinstance(sample["n_layers"], int)


@pytest.mark.parametrize(
    "line, message",
    [
        ("lr", "expected 'name type values'"),
        ("lr normal 0,1", "unknown type 'normal'"),
        ("lr uniform 1,0", "lower bound"),
        ("lr uniform 0", "2 comma-separated numbers"),
        ("lr choice []", "non-empty list"),
        ("lr choice [a b]", "Python list literal"),
    ],
)
def test_params_file_errors_name_the_line(tmp_path, line, message):
    path = _write(tmp_path / "bad.hyper", "# header\n" + line + "\n")
    with pytest.raises(ValueError, match=message) as error:
        parse_params_file(path)
    assert "line 2" in str(error.value)


def test_exhaustive_needs_choices_only(tmp_path):
    params = parse_params_file(_write(tmp_path / "p.hyper", "a choice [1,2]\nb uniform 0,1\n"))
    with pytest.raises(ValueError, match="--algo random or --algo bayes"):
        resolve_algo("exhaustive", params)
    assert resolve_algo("bayes", params) == "bayes"
    discrete = parse_params_file(_write(tmp_path / "d.hyper", "a choice [1,2]\nb choice [3,4,5]\n"))
    assert resolve_algo(None, discrete) == "exhaustive" and grid_size(discrete) == 6
    assert len(list(ray_space(discrete, grid=True)["b"].values())[0]) == 3  # tune.grid_search


def test_shipped_params_files():
    crs = {p.name for p in parse_params_file(os.path.join(HYPER_DIR, "CRSPretrain.hyper"))}
    assert {"learning_rate", "mask_ratio", "sad_weight"} <= crs
    sasrec = parse_params_file(os.path.join(HYPER_DIR, "SASRec.hyper"))
    # every searched name is a SASRec config key (a misspelt name would be searched but never used)
    config = check_config({"model": "SASRec", "dataset": "ml-100k"}, None)
    assert all(p.name in config.final_config_dict for p in sasrec)


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------
def test_other_key_value_arguments_become_fixed_config(tmp_path):
    config_file = _write(tmp_path / "c.yaml", "dataset: from-file\n")
    args, extras = cli.parse_args(
        ["--model=SASRec", "--params_file", "p.hyper", "--epochs=1", "--topk=[1,3]", "stray",
         "--config_files", config_file]
    )
    assert (args.model, args.params_file, args.tool, args.algo) == ("SASRec", "p.hyper", "Hyperopt", None)
    assert extras == {"epochs": "1", "topk": "[1,3]"}
    fixed = cli.fixed_config(args, extras, [config_file])
    assert fixed == {"epochs": "1", "topk": "[1,3]", "model": "SASRec"}  # dataset stays the config file's
    # no prefix matching: --data=... is a config value, not --dataset
    assert cli.parse_args(["--params_file", "p.hyper", "--data=x"])[1] == {"data": "x"}
    args, extras = cli.parse_args(["--params_file", "p.hyper"])
    assert cli.fixed_config(args, extras, None) == {"model": "CRSPretrain", "dataset": "ml-100k-crs-targets"}


@pytest.mark.parametrize("argument", ["--params_file", "--config_files"])
def test_a_missing_file_exits_2_before_any_trial(tmp_path, capsys, argument):
    files = {"--params_file": _write(tmp_path / "p.hyper", "learning_rate choice [0.01]\n")}
    files[argument] = str(tmp_path / "missing")
    argv = [item for pair in files.items() for item in pair]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv + [f"--output_file={tmp_path / 'r.result'}"])
    assert exit_info.value.code == 2
    assert f"'{tmp_path / 'missing'}' cannot be read (No such file or directory)" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["p.hyper"]


@pytest.mark.parametrize("algo", ["random", "bayes"])
def test_no_trial_to_run_exits_2_before_any_trial(tmp_path, capsys, algo):
    """--max_evals 0 was hyperopt's traceback ('There are no evaluation tasks') after the config check."""
    params = _write(tmp_path / "p.hyper", "learning_rate choice [0.01]\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--params_file", params, "--algo", algo, "--max_evals", "0", f"--output_file={tmp_path / 'r'}"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: --max_evals must be at least 1 for --algo {algo}, got 0: give the " \
        "number of trials, e.g. --max_evals 10\n"
    assert os.listdir(tmp_path) == ["p.hyper"]


def test_trial_sees_fixed_values_and_params_but_not_argv(monkeypatch):
    import recbole_crs.quick_start as quick_start

    seen = {}

    def fake_objective(config_dict, config_file_list, saved=True):
        import sys

        seen.update(config_dict=config_dict, files=config_file_list, argv=list(sys.argv))
        return {}

    monkeypatch.setattr(quick_start, "objective_function", fake_objective)
    monkeypatch.setattr("sys.argv", ["run_hyper.py", "--algo=random", "--epochs=3"])
    objective = TrialObjective({"model": "SASRec", "epochs": "1", "learning_rate": "0.5"})
    objective({"learning_rate": 0.01}, ["a.yaml"])
    assert seen["config_dict"] == {"model": "SASRec", "epochs": "1", "learning_rate": 0.01}
    assert seen["files"] == ["a.yaml"] and seen["argv"] == ["run_hyper.py"]


def _fake_objective(monkeypatch, fail_on_calls):
    import recbole_crs.quick_start as quick_start

    calls = []

    def fake_objective(config_dict, config_file_list, saved=True):
        calls.append(config_dict["learning_rate"])
        if len(calls) in fail_on_calls:
            raise RuntimeError("boom")
        score = config_dict["learning_rate"]
        return {"model": "SASRec", "best_valid_score": score, "valid_score_bigger": True,
                "best_valid_result": {"ndcg@3": score}, "test_result": {"ndcg@3": score}}

    monkeypatch.setattr(quick_start, "objective_function", fake_objective)
    return calls


def test_hyperopt_failed_trial_is_recorded_and_search_goes_on(monkeypatch, tmp_path):
    _fake_objective(monkeypatch, fail_on_calls={2})
    params = parse_params_file(_write(tmp_path / "p.hyper", "learning_rate choice [0.1,0.2,0.3]\n"))
    trials, best, _ = hyperopt_tune(params, "exhaustive", {"model": "SASRec"}, None)
    assert len(trials) == 3 and sum("error" in result for _, result in trials) == 1
    ok = [params["learning_rate"] for params, result in trials if "error" not in result]
    assert best[0]["learning_rate"] == max(ok)
    output_file = tmp_path / "r.result"
    write_result_file(output_file, trials, best)
    assert "Failed: RuntimeError: boom" in output_file.read_text()


def test_hyperopt_first_trial_failure_stops_the_search(monkeypatch, tmp_path):
    calls = _fake_objective(monkeypatch, fail_on_calls={1})
    params = parse_params_file(_write(tmp_path / "p.hyper", "learning_rate choice [0.1,0.2,0.3]\n"))
    with pytest.raises(RuntimeError, match="boom"):
        hyperopt_tune(params, "exhaustive", {"model": "SASRec"}, None)
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------------------------
# Two real trials on the tiny dataset
# ---------------------------------------------------------------------------------------------------------
def _tiny_search_inputs(root, **overrides):
    config = tiny_config(root, epochs=1, **overrides)
    config_file = _write(root / "tiny.yaml", yaml.safe_dump(config))
    params_file = _write(root / "tiny.hyper", f"learning_rate choice {LEARNING_RATES}\n")
    return config_file, params_file


def _check_two_trials(trials, best, output_file):
    assert sorted(params["learning_rate"] for params, _ in trials) == sorted(LEARNING_RATES)
    for _, result in trials:
        assert "error" not in result
        # --valid_metric=MRR@3 reached every trial: the score it picks the best by is MRR@3
        assert result["best_valid_score"] == pytest.approx(result["best_valid_result"]["mrr@3"])
        assert set(result["test_results"]) == {"all", "first", "confirmed"}
    best_params, best_result = best
    assert best_params["learning_rate"] in LEARNING_RATES
    assert best_result["best_valid_score"] == max(result["best_valid_score"] for _, result in trials)
    text = open(output_file, encoding="utf-8").read()
    for lr in LEARNING_RATES:
        assert f"learning_rate:{lr}\n" in text
    assert text.count("Valid result:") == 2 and text.count("Test result:") == 2
    assert f"Best params: learning_rate:{best_params['learning_rate']}" in text


def test_hyperopt_exhaustive_two_trials(tiny_root):
    repo_entries = set(os.listdir(REPO_ROOT))
    config_file, params_file = _tiny_search_inputs(tiny_root)
    start = time.perf_counter()
    trials, best = cli.main(
        ["--model", "SASRec", "--dataset", "tiny-crs", "--params_file", params_file, "--config_files", config_file,
         "--algo", "exhaustive", "--valid_metric=MRR@3"]
    )
    print(f"HyperTuning, 2 trials: {time.perf_counter() - start:.1f} s")
    _check_two_trials(trials, best, tiny_root / "hyper_SASRec.result")  # default output file, in the cwd
    assert set(os.listdir(REPO_ROOT)) == repo_entries


def test_ray_tune_two_trials(tiny_root):
    repo_entries = set(os.listdir(REPO_ROOT))
    # A relative data path: trials run in their own folders, so run_hyper.py must make it absolute.
    config_file, params_file = _tiny_search_inputs(tiny_root, data_path=".")
    output_file = str(tiny_root / "out" / "ray.result")
    start = time.perf_counter()
    trials, best = cli.main(
        ["--model", "SASRec", "--dataset", "tiny-crs", "--params_file", params_file, "--config_files", config_file,
         "--tool", "Ray", "--ray_cpus", "2", "--ray_dir", str(tiny_root / "ray"), "--output_file", output_file,
         "--valid_metric=MRR@3"]
    )
    print(f"Ray Tune, 2 trials incl. Ray start and stop: {time.perf_counter() - start:.1f} s")
    _check_two_trials(trials, best, output_file)
    # parallel trials got a checkpoint folder each (RecBole names checkpoints by the second they start)
    assert len(os.listdir(tiny_root / "saved")) == 2
    assert os.path.isdir(tiny_root / "ray" / "hyper_SASRec")
    assert set(os.listdir(REPO_ROOT)) == repo_entries
