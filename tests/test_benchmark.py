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


def run_main(tiny_root, suite, *extra):
    out = os.path.join(tiny_root, "out")
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
    assert "| model | runs ok | all NDCG@3 | all Recall@3 | first NDCG@3 |" in table
    row = next(line for line in table.splitlines() if line.startswith("| SASRec |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "2/2" and all("±" in c for c in cells[2:8])
    values = [r["test_results"]["all"]["ndcg@3"] for r in sasrec]
    mean, std = benchmark.mean_std(values)
    assert cells[2] == f"{mean:.4f} ± {std:.4f}"
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
    assert set(run["test_results"]["authors"]) == {"mrr", "ndcg@10", "hit@10"}
    header = open(os.path.join(out, "results.md")).read()
    assert "authors NDCG@3" in header and "authors Hit@3" in header


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
    assert suite.variants["S3Rec"].pretrain["pretrain_epochs"] >= 1
    assert {"ml-100k-crs", "lastfm-precrs"} <= set(suite.datasets)
    runs = benchmark.plan_runs(suite, ["ml-100k-crs"], ["SASRec", "GRU4Rec", "CRSPretrain"], [1, 2], "/data", "/out")
    assert len(runs) == 6 and len({run.config["hidden_size"] for run in runs}) == 1
    assert runs[0].config["checkpoint_dir"] == "/out/runs/ml-100k-crs/SASRec/seed1/saved"
    # A dataset's models.<Model> budget reaches that model only.
    assert runs[4].config["generator_epochs"] >= 1 and "generator_epochs" not in runs[0].config
    # Ours and the ablations: every override is a real CRSPretrain key (checked as the CLI does before running).
    ours = [name for name, v in suite.variants.items() if v.model == "CRSPretrain"]
    assert len(ours) >= 4
    benchmark.check_variants(suite, list(suite.variants), list(suite.datasets), str(tmp_path))


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
    monkeypatch.setattr(benchmark, "config_sha", lambda final: "now")
    real_resolve = benchmark.resolve_config_shas

    def resolve(specs):
        for spec in real_resolve(specs):
            spec.config_sha = "planned"
        return specs

    monkeypatch.setattr(benchmark, "resolve_config_shas", resolve)
    code, _, payload = run_main(tiny_root, suite, "--seeds", "1", "--overwrite")
    assert payload["runs"][0]["config_changed_since_planned"] is True
    assert "WARNING: a yaml file changed" in capsys.readouterr().out
