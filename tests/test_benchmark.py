"""python -m recbole_crs.benchmark: suite file, isolated runs, table / JSON / PNG, failures, S3Rec's two stages."""

import json
import os
import re

import pytest
import yaml

from recbole_crs import benchmark
from tiny_data import tiny_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_METRICS = ["ndcg@3", "recall@3"]


def write_suite(path, variants, datasets=None, common=None):
    common = common or {k: v for k, v in tiny_config("unused").items() if k not in ("data_path", "checkpoint_dir")}
    common.update(epochs=1, pretrain_epochs=1, embedding_size=8)
    suite = {
        "base_seed": 11,
        "table_metrics": TINY_METRICS,
        "plot_metric": "ndcg@3",
        "common": common,
        "datasets": datasets or {"tiny-crs": {}},
        "variants": variants,
    }
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(suite, f)
    return str(path)


def parse_tables(markdown):
    """``{dataset: (headers, {row name: {header: cell}})}`` of a results.md."""
    tables, dataset, headers = {}, None, None
    for line in markdown.splitlines():
        if line.startswith("### "):
            dataset, headers = line[4:].split(" (")[0], None
        elif line.startswith("|") and dataset is not None and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if headers is None:
                headers = cells
                tables[dataset] = (headers, {})
            else:
                tables[dataset][1][cells[0]] = dict(zip(headers, cells))
    return tables


def run_main(tiny_root, suite, *extra, out_name="out"):
    out = os.path.join(tiny_root, out_name)
    code = benchmark.main(
        ["--suite", suite, "--data-path", str(tiny_root), "--out", out, "--threads", "1", *extra]
    )
    path = os.path.join(out, "results.json")
    payload = json.load(open(path)) if os.path.exists(path) else None
    return code, out, payload


def test_two_models_two_seeds_give_table_json_and_png(tiny_root, capsys):
    suite = write_suite(tiny_root / "suite.yaml", {"Pop": {"model": "Pop"}, "SASRec": {"model": "SASRec"}})
    before = set(os.listdir(tiny_root))
    import torch

    threads = torch.get_num_threads()
    code, out, payload = run_main(tiny_root, suite, "--seeds", "2")
    assert code == 0
    assert payload["environment"]["torch_threads"] == 1 and torch.get_num_threads() == threads  # restored

    runs = payload["runs"]
    assert [(r["variant"], r["seed"]) for r in runs] == [("Pop", 11), ("Pop", 12), ("SASRec", 11), ("SASRec", 12)]
    for run in runs:
        assert run["status"] == "ok" and run["wall_s"] > 0
        assert set(run["test_results"]) == {"all", "first", "confirmed"}
        assert run["overrides"]["seed"] == run["seed"] and run["resolved"]["seed"] == run["seed"]
        assert run["overrides"]["epochs"] == 1 and run["overrides"]["hidden_size"] == 8
        # Isolated: the run's checkpoints lived in its own folder under --out and were removed afterwards.
        assert run["overrides"]["checkpoint_dir"] == os.path.join(run["run_dir"], "saved")
        assert run["run_dir"].startswith(out) and not os.path.exists(os.path.join(run["run_dir"], "saved"))
        assert os.path.exists(os.path.join(run["run_dir"], "run.log"))
    sasrec = [r for r in runs if r["variant"] == "SASRec"]
    assert not any(r.get("config_changed_since_planned") for r in runs)  # CRSDataset's own config edits aside
    # The whole final config is recorded; only the seed differs between a variant's runs.
    assert sasrec[0]["final_config"]["n_heads"] == 1 and sasrec[0]["final_config"]["seed"] == 11
    assert sasrec[0]["final_config_sha"] == sasrec[1]["final_config_sha"] != runs[0]["final_config_sha"]
    assert sasrec[0]["test_results"] != sasrec[1]["test_results"] or sasrec[0]["best_valid_score"] is not None
    # Nothing but the results folder appeared in the working directory (no ./saved, ./log, ./log_tensorboard).
    assert set(os.listdir(tiny_root)) - before == {"out"}

    table = open(os.path.join(out, "results.md")).read()
    headers, rows = parse_tables(table)["tiny-crs"]
    assert headers[:8] == ["model", "runs ok", "all NDCG@3 turn 1", "all NDCG@3 last turn", "all NDCG@3 all turns",
                           "all Recall@3 turn 1", "all Recall@3 last turn", "all Recall@3 all turns"]
    assert "first NDCG@3 turn 1" in headers and headers[-3:] == ["epochs", "CPU s / run", "wall s / run"]
    cells = rows["SASRec"]
    assert cells["runs ok"] == "2/2"
    # A cell holds mean ± std wherever the runs have that key (the older evaluation has no turn1/ or last/ keys).
    for header in headers[2:-3]:
        mode, label, *scope = header.split(" ")
        key = {"turn": "turn1/", "last": "last/", "all": ""}[scope[0]] + label.lower()
        assert ("±" in cells[header]) == all(key in r["test_results"][mode] for r in sasrec), header
    values = [r["test_results"]["all"]["ndcg@3"] for r in sasrec]
    mean, std = benchmark.mean_std(values)
    assert cells["all NDCG@3 all turns"] == f"{mean:.4f} ± {std:.4f}"
    # Both are baselines: the one with the higher mean validation score is named (no CRSPretrain: no gain row).
    valid = {v: benchmark.mean_std([r["best_valid_score"] for r in runs if r["variant"] == v])[0] for v in ("Pop", "SASRec")}
    assert "chance" in rows and f"best baseline: {max(valid, key=valid.get)}" in rows
    assert not any(name.startswith("gain") for name in rows)
    with open(os.path.join(out, "ndcg3.png"), "rb") as f:
        assert f.read(8) == PNG_MAGIC

    progress = capsys.readouterr().out
    assert "[1/4] start  tiny-crs Pop seed=11" in progress and "[4/4] ok in" in progress and "ETA" in progress


def test_failed_run_is_recorded_and_the_suite_goes_on(tiny_root):
    # hidden_size 6 is no multiple of 4 heads: SASRec's constructor raises once the run has started.
    variants = {
        "Broken": {"model": "SASRec", "config": {"hidden_size": 6, "n_heads": 4}},
        "SASRec": {"model": "SASRec"},
    }
    suite = write_suite(tiny_root / "suite.yaml", variants)
    code, out, payload = run_main(tiny_root, suite, "--seeds", "1")
    assert code == 1  # every run was tried, and the exit status says one failed
    broken, sasrec = payload["runs"]
    assert broken["status"] == "failed" and broken["error"]["type"] == "ValueError"
    assert "multiple of the number of attention heads" in broken["error"]["message"]
    assert "test_results" not in broken and broken["wall_s"] > 0
    assert sasrec["status"] == "ok"
    table = open(os.path.join(out, "results.md")).read()
    assert "**1 run(s) failed**" in table
    row = next(line for line in table.splitlines() if line.startswith("| Broken |"))
    assert "0/1 (failed: seed 11 ValueError)" in row and "| failed |" in row
    assert "| best baseline: SASRec |" in table  # the failed variant is never the best baseline

    # --fail-fast stops after the first failure.
    code, _, payload = run_main(tiny_root, suite, "--seeds", "1", "--overwrite", "--fail-fast")
    assert code == 1 and [r["variant"] for r in payload["runs"]] == ["Broken"]


@pytest.mark.parametrize(
    "variant, message",
    [
        ({"model": "NoSuchModel"}, "variant 'X': Model 'NoSuchModel' is neither"),
        ({"model": "SASRec", "config": {"hiden_size": 16}}, r"variant 'X' sets \['hiden_size'\].*ignore them silently"),
        ({"model": "S3Rec", "pretrain": {"pretrain_epoch": 1}}, r"sets \['pretrain_epoch'\]"),
        ({"model": "Pop"}, r"datasets.tiny-crs.models.Pop sets \['lr'\]"),
    ],
)
def test_unknown_model_or_config_key_stops_before_any_run(tiny_root, capsys, variant, message):
    datasets = {"tiny-crs": {"models": {"Pop": {"lr": 0.1}}}} if variant["model"] == "Pop" else None
    suite = write_suite(tiny_root / "suite.yaml", {"SASRec": {"model": "SASRec"}, "X": variant}, datasets=datasets)
    code, out, payload = run_main(tiny_root, suite, "--seeds", "1")
    assert code == 2 and payload is None
    assert re.search(message, capsys.readouterr().err, re.S)


@pytest.mark.parametrize(
    "setting, message",
    [
        ("hidden_act=foo", "tiny-crs Pop, tiny-crs SASRec: hidden_act must be one of gelu, relu"),
        ("epochs=abc", "tiny-crs Pop, tiny-crs SASRec: epochs must be an integer >= 1, got 'abc'"),
        ("hiden_size=8", "tiny-crs Pop: hiden_size (in config_dict) is not a setting"),
    ],
)
def test_a_set_value_the_config_refuses_stops_before_any_run(tiny_root, capsys, setting, message):
    """A --set value every run would refuse is the suite's error (one line per problem, exit 2), found before any
    run starts: not a failed run per seed recorded in results.json."""
    suite = write_suite(tiny_root / "suite.yaml", {"Pop": {"model": "Pop"}, "SASRec": {"model": "SASRec"}})
    for extra in ((), ("--dry-run",)):
        code, out, payload = run_main(tiny_root, suite, "--seeds", "2", "--set", setting, *extra)
        err = capsys.readouterr().err.splitlines()
        assert code == 2 and payload is None and not os.path.exists(out)
        assert err and all(line.startswith("error: ") for line in err) and message in err[0], err
        assert "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("option, value, message", [
    ("--threads", "-1", "--threads must be at least 1, got -1"),  # torch's RuntimeError traceback before
    ("--jobs", "0", "--jobs must be at least 1, got 0"),  # ran as --jobs 1
    ("--seeds", "0", "--seeds must be at least 1, got 0"),
    ("--base-seed", "-1", "--base-seed must be at least 0, got -1"),  # every run failed in NumPy's seeding
])
def test_a_command_line_number_out_of_range_stops_before_any_run(tiny_root, capsys, option, value, message):
    suite = write_suite(tiny_root / "suite.yaml", {"Pop": {"model": "Pop"}})
    code, out, payload = run_main(tiny_root, suite, option, value)
    assert code == 2 and payload is None and not os.path.exists(out)
    assert capsys.readouterr().err == f"error: {message}\n"


def test_resume_reuses_finished_runs_and_extends_the_results(tiny_root, capsys):
    variants = {"Pop": {"model": "Pop"}, "SASRec": {"model": "SASRec"}}
    suite = write_suite(tiny_root / "suite.yaml", variants)
    assert run_main(tiny_root, suite, "--models", "Pop", "--seeds", "1")[0] == 0
    assert run_main(tiny_root, suite, "--models", "Pop", "--seeds", "1")[0] == 2  # would overwrite: refused
    capsys.readouterr()
    code, out, payload = run_main(tiny_root, suite, "--models", "SASRec", "--seeds", "1", "--resume")
    assert code == 0 and [r["variant"] for r in payload["runs"]] == ["Pop", "SASRec"]
    code, out, payload = run_main(tiny_root, suite, "--seeds", "1", "--resume")
    assert code == 0 and len(payload["runs"]) == 2
    assert [i["runs_done"] for i in payload["invocations"]] == [1, 1, 0]  # the refused call recorded nothing
    assert "0 run(s) to do (2 reused)" in capsys.readouterr().out
    code, out, payload = run_main(tiny_root, suite, "--seeds", "1", "--resume", "--rerun", "Pop")
    assert code == 0 and "1 run(s) to do (1 reused)" in capsys.readouterr().out
    # A changed config is not reused.
    code, out, payload = run_main(tiny_root, suite, "--models", "Pop", "--seeds", "1", "--resume", "--epochs", "2")
    assert "1 run(s) to do (0 reused)" in capsys.readouterr().out
    assert [r["overrides"]["epochs"] for r in payload["runs"]] == [1, 2]
    os.remove(os.path.join(out, "results.md"))
    assert benchmark.main(["--suite", suite, "--out", out, "--report-only"]) == 0
    assert "| SASRec | 1/1 |" in open(os.path.join(out, "results.md")).read()


def test_s3rec_pretrains_then_finetunes_from_its_checkpoint(tiny_root):
    suite = write_suite(
        tiny_root / "suite.yaml", {"S3Rec": {"model": "S3Rec", "pretrain": {"pretrain_epochs": 2}}}
    )
    code, out, payload = run_main(tiny_root, suite, "--seeds", "1")
    assert code == 0
    (run,) = payload["runs"]
    assert [s["stage"] for s in run["stages"]] == ["pretrain", "finetune"] and run["stages"][0]["epochs"] == 2
    assert run["pretrain_overrides"]["train_stage"] == "pretrain"
    assert run["overrides"]["train_stage"] == "finetune" and run["resolved"]["train_stage"] == "finetune"
    assert run["overrides"]["pre_model_path"] == os.path.join(run["run_dir"], "saved", "S3Rec-tiny-crs-2.pth")
    log = open(os.path.join(run["run_dir"], "run.log")).read()
    assert "Load pretrained model from" in log and run["status"] == "ok"


PRECRS_ITEMS = {"1": [1, 2], "2": [1, 3], "3": [2, 3], "5": [1, 2, 3], "6": [1], "8": [1]}


def _precrs_records(n):
    return [
        {"user": 100 + k, "context": [[1, 2, 3, 6, 8][j % 5] for j in range(k % 3, k % 3 + 3)], "pos_item": 5,
         "initial": 1 + k % 3, "dialog": [[1 + k % 3, 3]]}
        for k in range(n)
    ]


def test_dataset_built_from_source_and_authors_mode_added(tiny_root):
    source = tiny_root / "precrs-src"
    source.mkdir()
    json.dump(PRECRS_ITEMS, open(source / "items.json", "w"))
    json.dump(_precrs_records(20), open(source / "records.json", "w"))
    datasets = {"small-precrs": {"convert": {
        "source": "precrs-source",
        "argv": ["precrs-lastfm", "--item-dict", "{source}/items.json", "--records", "{source}/records.json",
                 "--holdout", "valid=0.2,test=0.2", "--seed", "3", "--candidates", "3"],
    }}}
    suite = write_suite(tiny_root / "suite.yaml", {"Pop": {"model": "Pop"}}, datasets=datasets)
    code, _, _ = run_main(tiny_root, suite, "--seeds", "1")
    assert code == 2  # missing and no source: nothing runs
    code, out, payload = run_main(tiny_root, suite, "--seeds", "1", "--precrs-source", str(source))
    assert code == 0
    assert os.path.exists(tiny_root / "small-precrs" / "small-precrs.inter")
    (run,) = payload["runs"]
    assert list(run["test_results"]) == ["all", "first", "confirmed", "authors"]
    # Every mode reports the same metrics now (the authors' protocol used to report its own three).
    assert set(run["test_results"]["authors"]) == set(run["test_results"]["all"])
    assert {"ndcg@3", "turn1/ndcg@3", "chance/last/ndcg@3"} <= set(run["test_results"]["authors"])
    header = open(os.path.join(out, "results.md")).read()
    assert "authors NDCG@3" in header and "authors Recall@3" in header  # recall exists in every mode now


def test_modes_may_list_authors_which_only_datasets_with_candidates_get(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text("modes: [authors, confirmed]\nvariants: {X: {model: SASRec}}\ndatasets: {a: {}, b: {}}\n")
    suite = benchmark.load_suite(str(path))
    assert suite.modes == ("authors", "confirmed")
    for name, header in (("a", "user_id:token\titem_id:token\tcandidate_items:token_seq"),
                         ("b", "user_id:token\titem_id:token")):
        os.makedirs(tmp_path / name)
        (tmp_path / name / f"{name}.inter").write_text(header + "\n")
    assert benchmark.dataset_modes(suite, str(tmp_path), "a") == ["authors", "confirmed"]
    assert benchmark.dataset_modes(suite, str(tmp_path), "b") == ["confirmed"]
    default = benchmark.load_suite(write_suite(tmp_path / "default.yaml", {"X": {"model": "SASRec"}}))
    assert benchmark.dataset_modes(default, str(tmp_path), "a") == ["all", "first", "confirmed", "authors"]
    runs = benchmark.plan_runs(suite, ["a", "b"], ["X"], [1], str(tmp_path), str(tmp_path / "out"))
    assert [r.config["crs_test_modes"] for r in runs] == [["authors", "confirmed"], ["confirmed"]]


def test_missing_dataset_error_names_the_conversion_command(tmp_path):
    suite = benchmark.load_suite(os.path.join(REPO_ROOT, "benchmarks", "suite.yaml"))
    with pytest.raises(benchmark.SuiteError, match="(?s)--precrs-source DIR.*convert precrs-lastfm --item-dict"):
        benchmark.prepare_datasets(suite, ["lastfm-precrs"], str(tmp_path), {})


def test_repository_suite_defines_the_issue_models_with_one_budget(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = benchmark.load_suite(os.path.join(REPO_ROOT, "benchmarks", "suite.yaml"))
    for name in ["Pop", "GRU4Rec", "SASRec", "BERT4Rec", "S3Rec", "SASRecF", "FDSA"]:
        assert suite.variants[name].model == name
        assert not {"hidden_size", "n_layers", "MAX_ITEM_LIST_LENGTH", "epochs"} & set(suite.variants[name].config)
    # Converged: every model on every dataset trains until early stopping, one patience and one cap; the
    # pre-training budgets (S3Rec's, CRSPretrain's generator and pre-training) are set per dataset, side by side.
    for dataset in suite.datasets:
        assert suite.datasets[dataset].models["S3Rec"]["pretrain_epochs"] >= 1
        assert {"generator_epochs", "pretrain_epochs"} <= set(suite.datasets[dataset].models["CRSPretrain"])
        specs = benchmark.plan_runs(suite, [dataset], list(suite.variants), [1], "/data", "/out")
        assert {(spec.config["epochs"], spec.config["stopping_step"]) for spec in specs} == {
            (200, 10 if dataset.startswith("lastfm-precrs") else 3)}, dataset
    assert suite.variants["S3Rec"].pretrain == {} and benchmark.load_tuned(suite.tuned) is not None
    # The paper's regime (conversations on targets only) on both datasets, and the curve's fractions.
    assert {"ml-100k-crs-targets", "lastfm-precrs"} <= set(suite.datasets)
    assert all(dataset in suite.datasets for points in suite.curves["groups"].values() for _, dataset in points)
    assert "--conversations" in suite.datasets["lastfm-precrs"].convert["argv"]
    runs = benchmark.plan_runs(suite, ["ml-100k-crs-targets"], ["SASRec", "GRU4Rec", "CRSPretrain"], [1, 2], "/data",
                               "/out")
    assert len(runs) == 6 and len({run.config["hidden_size"] for run in runs}) == 1
    assert runs[0].config["checkpoint_dir"] == "/out/runs/ml-100k-crs-targets/SASRec/seed1/saved"
    # A dataset's models.<Model> budget reaches that model only.
    assert runs[4].config["generator_epochs"] >= 1 and "generator_epochs" not in runs[0].config
    # Ours and the ablations: every override is a real CRSPretrain key (checked as the CLI does before running).
    ours = [name for name, v in suite.variants.items() if v.model == "CRSPretrain"]
    assert len(ours) >= 4
    # The EAR baseline is in the suite; check_variants fails on any variant whose model does not exist.
    assert suite.variants["AttrFM"].model == "AttrFM" and suite.variants["Pop"].model == "Pop"
    benchmark.check_variants(suite, list(suite.variants), list(suite.datasets), str(tmp_path))
    assert suite.table_scopes == ("turn1", "last", "all") and suite.plot_mode == "confirmed"
    assert "ndcg@10" in suite.table_metrics


def test_suite_file_errors_are_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("variants: {X: {config: {}}}\n")
    with pytest.raises(benchmark.SuiteError, match="variants.X needs a 'model'"):
        benchmark.load_suite(str(bad))
    bad.write_text("variants: {X: {model: SASRec, overrides: {}}}\n")
    with pytest.raises(benchmark.SuiteError, match="unknown keys"):
        benchmark.load_suite(str(bad))
    bad.write_text("modes: [authors]\nvariants: {X: {model: SASRec}}\n")
    with pytest.raises(benchmark.SuiteError, match="added automatically"):
        benchmark.load_suite(str(bad))
    bad.write_text("modes: [confirmed, nearest]\nvariants: {X: {model: SASRec}}\n")
    with pytest.raises(benchmark.SuiteError, match="modes lists 'nearest'"):
        benchmark.load_suite(str(bad))
    bad.write_text("table_scopes: [turn1, middle]\nvariants: {X: {model: SASRec}}\n")
    with pytest.raises(benchmark.SuiteError, match=r"table_scopes lists \['middle'\]"):
        benchmark.load_suite(str(bad))
    for line, message in (("threads: -1", "threads must be an integer >= 1, got -1"),
                          ("threads: abc", "threads must be an integer >= 1, got 'abc'"),
                          ("base_seed: abc", "base_seed must be an integer >= 0, got 'abc'")):
        bad.write_text(f"{line}\nvariants: {{X: {{model: SASRec}}}}\n")  # torch's or int()'s traceback before
        with pytest.raises(benchmark.SuiteError, match=f"bad.yaml: {message}$"):
            benchmark.load_suite(str(bad))
    suite = benchmark.load_suite(write_suite(tmp_path / "ok.yaml", {"Pop": {"model": "Pop"}}))
    with pytest.raises(benchmark.SuiteError, match="unknown models"):
        benchmark.select("Pop,SASRec", list(suite.variants), "models")


def test_eta_scales_a_variant_to_a_dataset_where_it_has_not_run_yet():
    finished = [
        {"dataset": "big", "variant": "A", "wall_s": 100.0},
        {"dataset": "big", "variant": "B", "wall_s": 40.0},
        {"dataset": "small", "variant": "A", "wall_s": 10.0},
    ]
    pending = [benchmark.RunSpec("small", "B", 1, {}), benchmark.RunSpec("big", "A", 2, {}),
               benchmark.RunSpec("other", "C", 1, {})]
    # small B: 40 * (10 / 100); big A: 100; other C: the mean of every (dataset, variant) mean.
    assert benchmark.estimate_remaining(pending, finished) == pytest.approx(4 + 100 + 50)
    assert benchmark.estimate_remaining(pending, []) is None


def test_resume_reruns_a_run_whose_model_defaults_changed(tiny_root, monkeypatch, capsys):
    """--resume compares effective configs (every yaml layer), so an edited yaml default reruns the run."""
    import shutil

    from recbole_crs import config as crs_config

    properties = tiny_root / "properties"
    shutil.copytree(crs_config.PROPERTIES_DIR, properties)
    monkeypatch.setattr(crs_config, "PROPERTIES_DIR", str(properties))
    suite = write_suite(tiny_root / "suite.yaml", {"Pop": {"model": "Pop"}})
    assert run_main(tiny_root, suite, "--seeds", "1")[0] == 0
    capsys.readouterr()
    (properties / "dataset" / "tiny-crs.yaml").write_text("weight_decay: 0.01\n")
    code, _, payload = run_main(tiny_root, suite, "--seeds", "1", "--resume")
    assert code == 0 and "1 run(s) to do (0 reused)" in capsys.readouterr().out
    assert payload["runs"][0]["final_config"]["weight_decay"] == 0.01

    # A yaml edited while the suite runs (after planning) is flagged on the run.
    from recbole_crs.benchmark.execution import run_all as runner, run_one as run_module

    monkeypatch.setattr(run_module, "config_sha", lambda final: "now")
    real_resolve = benchmark.resolve_config_shas

    def resolve(specs):
        for spec in real_resolve(specs):
            spec.config_sha = "planned"
        return specs

    monkeypatch.setattr(runner, "resolve_config_shas", resolve)
    code, _, payload = run_main(tiny_root, suite, "--seeds", "1", "--overwrite")
    assert payload["runs"][0]["config_changed_since_planned"] is True
    assert "WARNING: a yaml file changed" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------------
# Tables and plots from synthetic results (no training)
# ----------------------------------------------------------------------------------------------------------
M = "ndcg@10"
CHANCE = {"all": 0.0125, "first": 0.0456, "confirmed": 0.1789}
SCOPE_SHIFT = {"": 0.0, "turn1/": -0.05, "last/": 0.05}


def fake_run(variant, model, seed, valid, test, dataset="d1", turns=3, status="ok"):
    """A finished run in the new format: per mode m / turn1/m / last/m and their chance/ keys, and by turn."""
    run = {"dataset": dataset, "variant": variant, "model": model, "seed": seed, "status": status, "wall_s": 2.0,
           "overrides": {"crs_candidates": "confirmed"}}
    if status != "ok":
        return dict(run, error={"type": "RuntimeError", "message": "boom"})
    results, by_turn = {}, {}
    for offset, mode in enumerate(("all", "first", "confirmed")):
        results[mode] = {}
        for prefix, shift in SCOPE_SHIFT.items():
            results[mode][prefix + M] = test + shift + 0.01 * offset
            results[mode]["chance/" + prefix + M] = CHANCE[mode] + shift / 10
        by_turn[mode] = {
            str(t): {M: test + 0.02 * t + 0.01 * offset, "chance/" + M: CHANCE[mode], "states": 10}
            for t in range(1, turns + 1)
        }
    return dict(run, epochs_run=2, best_valid_score=valid, valid_score_bigger=True,
                best_valid_result={M: valid, "turn1/" + M: valid - 0.1},
                resolved={"valid_metric": "NDCG@10", "crs_candidates": "confirmed"},
                test_results=results, test_results_by_turn=by_turn)


def synthetic_payload():
    runs = []
    for seed in (1, 2):
        d = 0.01 * (seed - 1)
        # Pop has the best *test* results of the baselines but a lower validation score than SASRec.
        runs.append(fake_run("Pop", "Pop", seed, valid=0.30 + d, test=0.60 + d))
        runs.append(fake_run("SASRec", "SASRec", seed, valid=0.40 + d, test=0.20 + d))
        runs.append(fake_run("AttrFM", "AttrFM", seed, valid=0.35 + d, test=0.50 + d))
        runs.append(fake_run("CRSPretrain", "CRSPretrain", seed, valid=0.38 + d, test=0.30 + d))
        # An ablation of ours with the best validation (and test) score: never a baseline.
        runs.append(fake_run("CRSPretrain-noPretrain", "CRSPretrain", seed, valid=0.90 + d, test=0.90 + d))
    runs.append(fake_run("Broken", "GRU4Rec", 1, valid=None, test=None, status="failed"))
    return {"suite": "synthetic.yaml", "table_metrics": [M], "table_scopes": ["turn1", "last", "all"],
            "plot_metric": M, "plot_mode": "confirmed", "datasets_order": ["d1"],
            "variants_order": ["Pop", "SASRec", "AttrFM", "Broken", "CRSPretrain", "CRSPretrain-noPretrain"],
            "runs": runs}


def test_table_chance_row_best_baseline_on_validation_and_gain(tmp_path):
    payload = synthetic_payload()
    paths = benchmark.write_reports(payload, str(tmp_path))
    markdown = open(tmp_path / "results.md").read()
    headers, rows = parse_tables(markdown)["d1"]
    assert headers == ["model", "runs ok"] + [f"{mode} NDCG@10 {scope}" for mode in ("all", "first", "confirmed")
                                             for scope in ("turn 1", "last turn", "all turns")] + ["epochs", "CPU s / run", "wall s / run"]
    names = list(rows)
    assert names[0] == "chance" and names[-2:] == ["best baseline: SASRec", "gain of CRSPretrain over best baseline"]
    assert names[1:-2] == payload["variants_order"]
    # The heading says what the baseline was chosen on.
    assert "### d1 (best baseline chosen on mean validation NDCG@10 (confirmed), never on test)" in markdown

    # Chance row = the runs' chance/ keys (the same in every run).
    for mode in ("all", "first", "confirmed"):
        for prefix, label in (("", "all turns"), ("turn1/", "turn 1"), ("last/", "last turn")):
            expected = payload["runs"][0]["test_results"][mode]["chance/" + prefix + M]
            assert all(r["test_results"][mode]["chance/" + prefix + M] == expected
                       for r in payload["runs"] if r["status"] == "ok")
            assert rows["chance"][f"{mode} NDCG@10 {label}"] == f"{expected:.4f}"
    assert "taken from one finished run (Pop seed 1) and checked against every other run" in markdown

    # Best baseline by validation: SASRec (valid 0.405) over AttrFM (0.355) and Pop (0.305), although Pop and
    # AttrFM have the higher test scores, and never the ablation of ours (valid 0.905).
    best = rows["best baseline: SASRec"]
    assert best["runs ok"] == "valid 0.4050 ± 0.0071"
    assert best["confirmed NDCG@10 all turns"] == rows["SASRec"]["confirmed NDCG@10 all turns"]
    assert "(Pop, SASRec, AttrFM, Broken; variants of CRSPretrain/CRSFinetune are ours" in markdown

    # Gain of CRSPretrain over SASRec per column, in %.
    def mean_of(variant, mode, key):
        return benchmark.mean_std([r["test_results"][mode][key] for r in payload["runs"] if r["variant"] == variant])[0]

    gain = rows["gain of CRSPretrain over best baseline"]
    for mode in ("all", "first", "confirmed"):
        for prefix, label in (("", "all turns"), ("turn1/", "turn 1"), ("last/", "last turn")):
            ours, base = mean_of("CRSPretrain", mode, prefix + M), mean_of("SASRec", mode, prefix + M)
            assert gain[f"{mode} NDCG@10 {label}"] == f"{100 * (ours - base) / base:+.1f}%"
    assert gain["confirmed NDCG@10 all turns"] == "+44.4%"  # (0.325 - 0.225) / 0.225
    # Failed variant: counted, never averaged, never a baseline.
    assert rows["Broken"]["runs ok"].startswith("0/1 (failed: seed 1 RuntimeError)")
    assert rows["Broken"]["confirmed NDCG@10 turn 1"] == "failed"
    assert [os.path.basename(p) for p in paths] == ["results.md", "ndcg10.png", "ndcg10_by_turn.png"]


def test_best_baseline_ignores_test_scores_and_our_ablations():
    payload = synthetic_payload()
    summary = benchmark.summarize(payload["runs"], variants_order=payload["variants_order"])["d1"]
    name, chosen = benchmark.best_baseline(summary)
    assert name == "SASRec" and chosen["valid"][0] == pytest.approx(0.405)
    # With only ours left there is no baseline at all.
    ours = {k: v for k, v in summary.items() if v["model"] == "CRSPretrain"}
    assert benchmark.best_baseline(ours) is None
    # Lower-is-better validation metrics pick the smallest.
    for s in summary.values():
        s["valid_bigger"] = False
    assert benchmark.best_baseline(summary)[0] == "Pop"


def test_chance_disagreement_is_flagged(tmp_path):
    payload = synthetic_payload()
    payload["runs"][1]["test_results"]["confirmed"]["chance/" + M] += 0.01
    benchmark.write_reports(payload, str(tmp_path))
    assert "**runs disagree on it** in confirmed ndcg@10 all!" in open(tmp_path / "results.md").read()


def test_by_turn_plot_is_written_from_test_results_by_turn(tmp_path):
    payload = synthetic_payload()
    curves = benchmark.by_turn_curves(payload["runs"], M, "confirmed", variants_order=payload["variants_order"])
    curve = curves["d1"]
    assert curve["mode"] == "confirmed" and curve["chance"] == [(1, 0.1789), (2, 0.1789), (3, 0.1789)]
    turn, mean, std = curve["variants"]["SASRec"][1]
    assert turn == 2 and mean == pytest.approx(0.205 + 0.04 + 0.02) and std == pytest.approx(0.01 / 2 ** 0.5)
    assert "Broken" not in curve["variants"]
    path = benchmark.plot_by_turn(payload["runs"], str(tmp_path / "by_turn.png"), M, "confirmed")
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    assert os.listdir(tmp_path) == ["by_turn.png"]  # written under a temporary name, then renamed
    # A mode the runs lack: the first mode they have.
    assert benchmark.by_turn_curves(payload["runs"], M, "authors")["d1"]["mode"] == "all"


def test_old_results_without_per_turn_keys_still_report(tmp_path):
    payload = synthetic_payload()
    for run in payload["runs"]:
        run.pop("test_results_by_turn", None)
        run.pop("best_valid_result", None)
        for mode in run.get("test_results", {}).values():
            for key in [k for k in mode if "/" in k]:
                del mode[key]
    for key in ("table_scopes", "plot_mode"):
        del payload[key]
    with open(tmp_path / "results.json", "w") as f:
        json.dump(payload, f)
    assert benchmark.main(["--out", str(tmp_path), "--report-only", "--suite", str(tmp_path / "none.yaml")]) == 0
    markdown = open(tmp_path / "results.md").read()
    headers, rows = parse_tables(markdown)["d1"]
    assert rows["chance"]["confirmed NDCG@10 turn 1"] == "-" and rows["SASRec"]["confirmed NDCG@10 turn 1"] == "-"
    assert rows["SASRec"]["confirmed NDCG@10 all turns"] == "0.2250 ± 0.0071"
    assert "**10 run(s) predate per-turn evaluation**" in markdown
    assert not os.path.exists(tmp_path / "ndcg10_by_turn.png") and os.path.exists(tmp_path / "ndcg10.png")
    # A file that is no results.json says so.
    (tmp_path / "results.json").write_text('{"runs": [{"variant": "X"}]}')
    with pytest.raises(benchmark.SuiteError, match=r"run 0 lacks \['dataset', 'seed'\]"):
        benchmark.load_results(str(tmp_path / "results.json"))


def test_jobs_2_runs_in_separate_processes_with_the_same_results_as_jobs_1(tiny_root, capsys):
    suite = write_suite(tiny_root / "suite.yaml", {"Pop": {"model": "Pop"}, "SASRec": {"model": "SASRec"}})
    code, out1, one = run_main(tiny_root, suite, "--seeds", "1", out_name="out1")
    assert code == 0
    capsys.readouterr()
    code, out2, two = run_main(tiny_root, suite, "--seeds", "1", "--jobs", "2", out_name="out2")
    assert code == 0
    progress = capsys.readouterr().out
    assert "2 at a time in separate processes" in progress and "2/2 done" in progress
    assert "[1/2] start  tiny-crs Pop seed=11" in progress and "[2/2] start  tiny-crs SASRec seed=11" in progress
    keys = ("best_valid_score", "best_valid_result", "test_results", "test_results_by_turn", "epochs_run")
    assert [(r["variant"], r["seed"]) for r in two["runs"]] == [(r["variant"], r["seed"]) for r in one["runs"]]
    for a, b in zip(one["runs"], two["runs"]):
        assert a["status"] == b["status"] == "ok"
        assert {k: a.get(k) for k in keys} == {k: b.get(k) for k in keys}
        assert b["run_dir"].startswith(out2) and os.path.exists(os.path.join(b["run_dir"], "run.log"))
    # Each run had its own process; only the parent wrote results.json (no per-run record left behind).
    assert one["runs"][0]["pid"] == os.getpid() and len({r["pid"] for r in two["runs"]} | {os.getpid()}) == 3
    assert not [f for _, _, files in os.walk(out2) for f in files if f.endswith(".record.json")]
    assert two["invocations"][-1]["jobs"] == 2
    table1 = parse_tables(open(os.path.join(out1, "results.md")).read())
    table2 = parse_tables(open(os.path.join(out2, "results.md")).read())
    for rows in (table1["tiny-crs"][1], table2["tiny-crs"][1]):
        for row in rows.values():
            row.pop("wall s / run", None)
            row.pop("CPU s / run", None)
    assert table1 == table2


def test_set_values_are_yaml_never_python(tiny_root, capsys):
    """--set values are parsed as yaml (never eval'd), for every run of the suite."""
    assert benchmark.parse_set(["epochs=2", "crs_stages=[finetune]", "x=__import__('os')", "y=null"]) == {
        "epochs": 2, "crs_stages": ["finetune"], "x": "__import__('os')", "y": None}
    with pytest.raises(benchmark.SuiteError, match="KEY=VALUE"):
        benchmark.parse_set(["epochs"])
    suite = write_suite(tiny_root / "suite.yaml", {"SASRec": {"model": "SASRec"}})
    code, _, payload = run_main(tiny_root, suite, "--dry-run", "--seeds", "1", "--set", "epochs=3", "--set",
                                "wandb_project=__import__('os')")
    assert code == 0 and payload is None
    planned = json.loads(capsys.readouterr().out.strip().split(": ", 1)[1])
    assert planned["epochs"] == 3 and planned["wandb_project"] == "__import__('os')"
    assert run_main(tiny_root, suite, "--dry-run", "--set", "epochs")[0] == 2
    assert "--set expects KEY=VALUE" in capsys.readouterr().err


def test_crspretrain_suite_gives_sasrec_the_finetuning_budget(tmp_path, monkeypatch):
    """benchmarks/crspretrain.yaml: CRSPretrain, its no-pre-training ablation and SASRec on one budget."""
    from recbole_crs.config import Config

    monkeypatch.chdir(tmp_path)
    suite = benchmark.load_suite(os.path.join(REPO_ROOT, "benchmarks", "crspretrain.yaml"))
    assert {name: v.model for name, v in suite.variants.items()} == {
        "CRSPretrain": "CRSPretrain", "noPretrain": "CRSPretrain", "SASRec": "SASRec"}
    assert suite.variants["noPretrain"].config == {"crs_stages": ["finetune"]} and suite.epoch_ratios == "SASRec"
    assert suite.modes == ("confirmed", "all") and suite.table_metrics == ("ndcg@10", "recall@10")
    benchmark.check_variants(suite, list(suite.variants), list(suite.datasets), str(tmp_path))
    runs = benchmark.plan_runs(suite, ["ml-100k-crs"], list(suite.variants), [1], str(tmp_path), str(tmp_path))
    configs = {run.variant: Config(run.config["model"], run.dataset, config_dict=run.config) for run in runs}
    shared = ["MAX_ITEM_LIST_LENGTH", "hidden_size", "inner_size", "n_layers", "n_heads", "hidden_dropout_prob",
              "attn_dropout_prob", "hidden_act", "layer_norm_eps", "initializer_range", "train_batch_size",
              "eval_batch_size", "learning_rate", "epochs", "stopping_step", "eval_step"]
    for key in shared:
        assert configs["SASRec"][key] == configs["CRSPretrain"][key], key
    # The budget is CRSPretrain's own: its yaml defaults, unchanged by the suite.
    defaults = Config("CRSPretrain", "ml-100k-crs", config_dict={"data_path": str(tmp_path)})
    assert all(configs["CRSPretrain"][key] == defaults[key] for key in shared)
    assert configs["noPretrain"]["crs_stages"] == ["finetune"] and len(configs["CRSPretrain"]["crs_stages"]) == 3


def test_epoch_times_are_read_from_the_run_log_per_stage(tmp_path):
    from recbole_crs.benchmark.report.epochs import epoch_seconds

    log = tmp_path / "run.log"
    log.write_text(
        "x INFO  epoch 0 training [time: 1.50s, train loss: 3.0]\n"
        "x INFO  epoch 0 evaluating [time: 9.00s, valid_score: 0.1]\n"
        "x INFO  epoch 1 training [time: 2.50s, train loss: 2.0]\n"
        "x INFO  stage generator done in 5.0s\n"
        "x INFO  epoch 0 pre-training [time: 4.00s, negatives: uniform, MIP loss: 1.0]\n"
        "x INFO  stage pretrain done in 4.1s; valid before fine-tuning: {}\n"
        "x INFO  epoch 0 training [time: 0.75s, train loss: 1.0]\n"
    )
    assert epoch_seconds(str(log), 0, "train") == {"generator": [1.5, 2.5], "pretrain": [4.0], "train": [0.75]}
    offset = len(log.read_bytes()) - len("x INFO  epoch 0 training [time: 0.75s, train loss: 1.0]\n")
    assert epoch_seconds(str(log), offset, "finetune") == {"finetune": [0.75]}
    assert epoch_seconds(str(tmp_path / "none.log"), 0, "train") == {}


def test_epoch_ratio_table_divides_each_stage_by_the_reference_epoch_of_the_same_seed(tmp_path):
    runs = [fake_run("SASRec", "SASRec", seed, 0.2, 0.3) for seed in (1, 2)]
    runs += [fake_run("CRSPretrain", "CRSPretrain", seed, 0.3, 0.4) for seed in (1, 2)]
    runs[0]["epoch_seconds"] = {"train": [1.0, 3.0]}  # seed 1: a SASRec epoch takes 2 s
    runs[1]["epoch_seconds"] = {"train": [4.0]}  # seed 2: 4 s
    runs[2]["epoch_seconds"] = {"generator": [2.0], "pretrain": [6.0, 6.0]}
    runs[3]["epoch_seconds"] = {"generator": [4.0], "pretrain": [8.0]}
    payload = {"suite": "s", "runs": runs, "table_metrics": [M], "epoch_ratios": "SASRec"}
    benchmark.write_reports(payload, str(tmp_path))
    table = open(tmp_path / "results.md").read()
    assert "| epoch | seconds | ratio to a SASRec epoch |" in table
    assert "| CRSPretrain generator | 3.0 ± 1.4 | 1.00 ± 0.00 |" in table  # 2/2 and 4/4
    assert "| CRSPretrain pretrain | 7.0 ± 1.4 | 2.50 ± 0.71 |" in table  # 6/2 and 8/4
    assert "| SASRec train | 3.0 ± 1.4 | 1.00 ± 0.00 |" in table
    # Without epoch_ratios (the default) there is no such table; --epoch-ratios asks for one after the fact.
    del payload["epoch_ratios"]
    benchmark.write_reports(payload, str(tmp_path))
    assert "ratio to a" not in open(tmp_path / "results.md").read()
    with open(tmp_path / "results.json", "w") as f:
        json.dump(payload, f)
    assert benchmark.main(["--out", str(tmp_path), "--report-only", "--suite", str(tmp_path / "none.yaml"),
                           "--epoch-ratios", "CRSPretrain"]) == 0
    # The unit is the mean of every training epoch of the reference run: seed 1 (2+6+6)/3 s, seed 2 (4+8)/2 s.
    assert "| SASRec train | 3.0 ± 1.4 | 0.55 ± 0.17 |" in open(tmp_path / "results.md").read()


def test_crspretrain_runs_record_the_epoch_times_of_each_stage_without_patching_trainers(tiny_root):
    from recbole_crs.trainer import TrainerWithCRSEvaluation
    from recbole_crs.trainer.stages import CRSFinetuneTrainer, CRSGeneratorTrainer, CRSPretrainTrainer

    classes = (TrainerWithCRSEvaluation, CRSFinetuneTrainer, CRSGeneratorTrainer, CRSPretrainTrainer)
    before = [c._train_epoch for c in classes]
    variants = {"CRSPretrain": {"model": "CRSPretrain", "config": {"generator_epochs": 1}},
                "SASRec": {"model": "SASRec"}}
    suite = write_suite(tiny_root / "suite.yaml", variants)
    with open(suite) as f:
        raw = yaml.safe_load(f)
    raw["epoch_ratios"] = "SASRec"
    with open(suite, "w") as f:
        yaml.safe_dump(raw, f)
    code, out, payload = run_main(tiny_root, suite, "--seeds", "1")
    assert code == 0
    ours, sasrec = payload["runs"]
    assert list(ours["epoch_seconds"]) == ["generator", "pretrain", "finetune"]
    assert [len(ours["epoch_seconds"][stage]) for stage in ("generator", "pretrain")] == [1, 1]
    assert len(ours["epoch_seconds"]["finetune"]) == ours["epochs_run"]
    assert list(sasrec["epoch_seconds"]) == ["train"] and len(sasrec["epoch_seconds"]["train"]) == sasrec["epochs_run"]
    assert all(t >= 0 for times in ours["epoch_seconds"].values() for t in times)
    table = open(os.path.join(out, "results.md")).read()
    row = re.search(r"\| CRSPretrain pretrain \| ([0-9.]+) \| (\S+) \|", table)
    assert row and float(row.group(1)) == pytest.approx(ours["epoch_seconds"]["pretrain"][0], abs=0.05)
    # The log has 0.01 s resolution: on the tiny data a SASRec epoch may log 0.00 s, which no ratio divides by.
    unit = sum(sasrec["epoch_seconds"]["train"]) / len(sasrec["epoch_seconds"]["train"])
    expected = f"{ours['epoch_seconds']['pretrain'][0] / unit:.2f}" if unit else "-"
    assert row.group(2) == expected
    assert [c._train_epoch for c in classes] == before


def test_jobs_a_run_whose_process_dies_is_recorded_as_failed(tiny_root, monkeypatch):
    from recbole_crs.benchmark.execution import jobs

    monkeypatch.setattr(jobs, "WORKER_COMMAND", "import sys; sys.exit(3)")  # dies before any record
    suite = write_suite(tiny_root / "suite.yaml", {"Pop": {"model": "Pop"}})
    code, out, payload = run_main(tiny_root, suite, "--seeds", "2", "--jobs", "2")
    assert code == 1
    assert [(r["status"], r["error"]["type"]) for r in payload["runs"]] == [("failed", "ProcessDied")] * 2
    assert "exited with code 3" in payload["runs"][0]["error"]["message"]
    assert not [f for _, _, files in os.walk(out) for f in files if f.endswith((".record.json", ".task.json"))]


def test_curves_tabulate_and_plot_each_variant_against_the_datasets_x_values(tmp_path):
    runs = []
    for seed in (1, 2):
        d = 0.01 * (seed - 1)
        for x, dataset in ((0.1, "small"), (1.0, "full")):
            runs.append(fake_run("CRSPretrain", "CRSPretrain", seed, valid=0.3, test=0.2 + x / 10 + d, dataset=dataset))
            runs.append(fake_run("SASRec", "SASRec", seed, valid=0.3, test=0.25 + d, dataset=dataset))
    curves = {"label": "share of users", "groups": {"toy": [[0.1, "small"], [1.0, "full"]]},
              "metric": None, "mode": None, "scope": "all"}
    payload = {"suite": "s.yaml", "table_metrics": [M], "plot_metric": M, "plot_mode": "confirmed",
               "curves": curves, "runs": runs}
    paths = benchmark.write_reports(payload, str(tmp_path))
    assert str(tmp_path / "ndcg10_curves.png") in paths and os.path.getsize(tmp_path / "ndcg10_curves.png") > 0
    markdown = open(tmp_path / "results.md").read()
    assert "### toy: test NDCG@10 (confirmed mode, all turns) by share of users" in markdown
    # confirmed mode, all turns: test + 0.02 (mode offset); std over seeds 0.01/sqrt(2)
    assert "| CRSPretrain | 0.2350 ± 0.0071 | 0.3250 ± 0.0071 |" in markdown
    assert "| SASRec | 0.2750 ± 0.0071 | 0.2750 ± 0.0071 |" in markdown
    assert f"| chance | {CHANCE['confirmed']:.4f} | {CHANCE['confirmed']:.4f} |" in markdown


def test_curves_must_name_suite_datasets(tmp_path):
    path = write_suite(tmp_path / "suite.yaml", {"Pop": {"model": "Pop"}})
    raw = yaml.safe_load(open(path))
    raw["curves"] = {"label": "x", "groups": {"c": {0.5: "nope"}}}
    yaml.safe_dump(raw, open(path, "w"))
    with pytest.raises(benchmark.SuiteError, match="dataset 'nope' is not in the suite's datasets"):
        benchmark.load_suite(path)
