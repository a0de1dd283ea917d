"""python -m recbole_crs.benchmark, converged and equally tuned: early stopping and epoch caps in the tables, CPU
seconds per run and per stage, the tuned-values layer, --export-config and --tune (run_hyper.py)."""

import json
import os

import pytest
import yaml

from recbole_crs import benchmark
from recbole_crs.benchmark.execution.tune import best_trial
from recbole_crs.tuning.params import grid_size, parse_params_file
from recbole_crs.tuning.results import read_result_file
from test_benchmark import REPO_ROOT, fake_run, parse_tables, run_main, synthetic_payload, write_suite

M = "ndcg@10"


def _with(run, **keys):
    run.update(keys)
    return run


# ----------------------------------------------------------------------------------------------------------
# Tables: epochs and their cap, CPU seconds, pre-training compute, baselines ranked on validation
# ----------------------------------------------------------------------------------------------------------
def test_epochs_cell_marks_a_variant_with_a_run_at_its_epoch_cap_and_cpu_seconds_are_shown(tmp_path):
    runs = [
        _with(fake_run("SASRec", "SASRec", 1, 0.4, 0.3), epochs_run=17, final_config={"epochs": 200}, cpu_s=100.0),
        _with(fake_run("SASRec", "SASRec", 2, 0.4, 0.3), epochs_run=200, final_config={"epochs": 200}, cpu_s=120.0),
        # Pop counts in one pass (its trainer's own single epoch): far below its cap, never marked.
        _with(fake_run("Pop", "Pop", 1, 0.2, 0.1), epochs_run=1, final_config={"epochs": 200}, cpu_s=3.0),
        # An older run without final_config: the cap is its resolved epochs.
        _with(fake_run("GRU4Rec", "GRU4Rec", 1, 0.3, 0.2), epochs_run=8, resolved={"epochs": 8}),
    ]
    benchmark.write_reports({"suite": "s", "runs": runs, "table_metrics": [M]}, str(tmp_path))
    markdown = open(tmp_path / "results.md").read()
    headers, rows = parse_tables(markdown)["d1"]
    assert headers[-3:] == ["epochs", "CPU s / run", "wall s / run"]
    assert rows["SASRec"]["epochs"] == "108.5 ± 129.4 †" and rows["SASRec"]["CPU s / run"] == "110 ± 14"
    assert rows["Pop"]["epochs"] == "1.0" and rows["Pop"]["CPU s / run"] == "3"
    assert rows["GRU4Rec"]["epochs"] == "8.0 †" and rows["GRU4Rec"]["CPU s / run"] == "-"  # no cpu_s recorded
    assert rows["chance"]["CPU s / run"] == "-"
    assert ("`†`: runs that trained their whole epoch budget (`epochs`) without early stopping on validation, so "
            "they may be under-trained: SASRec 1 of 2 runs (epochs 200); GRU4Rec 1 of 1 runs (epochs 8).") in markdown


def test_pretraining_compute_of_s3rec_and_crspretrain_is_stated_below_the_table(tmp_path):
    runs = []
    for seed, (s3rec, generator, pretrain) in enumerate(((40.0, 5.0, 70.0), (44.0, 7.0, 74.0)), start=1):
        runs.append(_with(fake_run("S3Rec", "S3Rec", seed, 0.4, 0.3), stages=[
            {"stage": "pretrain", "wall_s": 60.0, "cpu_s": s3rec + 2, "epochs": 2, "train_cpu_s": s3rec},
            {"stage": "finetune", "wall_s": 30.0, "cpu_s": 20.0}]))
        runs.append(_with(fake_run("CRSPretrain", "CRSPretrain", seed, 0.4, 0.3),
                          final_config={"epochs": 200, "generator_epochs": 5, "pretrain_epochs": 50},
                          pipeline_cpu_s={"generator": generator, "pretrain": pretrain, "finetune": 30.0}))
    runs.append(_with(fake_run("CRSPretrain-noPretrain", "CRSPretrain", 1, 0.4, 0.3),
                      pipeline_cpu_s={"finetune": 30.0}))
    benchmark.write_reports({"suite": "s", "runs": runs, "table_metrics": [M]}, str(tmp_path))
    markdown = open(tmp_path / "results.md").read()
    assert ("pre-training is a fixed budget, not early-stopped (epochs, and CPU seconds of its training, mean ± std): "
            "S3Rec: pretrain 2 epochs 42 ± 3 s; CRSPretrain: generator 5 epochs 6 ± 1 s + pretrain 50 epochs 72 ± 3 s "
            "= 78 ± 4 s.") in markdown
    assert "CRSPretrain-noPretrain:" not in markdown  # no pre-training stage, nothing to state


def test_baselines_are_listed_by_mean_validation_score(tmp_path):
    benchmark.write_reports(synthetic_payload(), str(tmp_path))
    markdown = open(tmp_path / "results.md").read()
    # Pop has the best test scores, our ablation the best validation score: neither changes the order.
    assert ("Baselines ranked by mean validation NDCG@10 (confirmed): 1. SASRec 0.4050 ± 0.0071, "
            "2. AttrFM 0.3550 ± 0.0071, 3. Pop 0.3050 ± 0.0071.") in markdown


# ----------------------------------------------------------------------------------------------------------
# Real runs on the tiny data: early stopping, epochs run, CPU seconds per stage
# ----------------------------------------------------------------------------------------------------------
def test_runs_stop_early_count_their_epochs_exactly_and_record_cpu_seconds_per_stage(tiny_root):
    variants = {"SASRec": {"model": "SASRec"}, "S3Rec": {"model": "S3Rec", "pretrain": {}},
                "CRSPretrain": {"model": "CRSPretrain", "config": {"generator_epochs": 1}}}
    datasets = {"tiny-crs": {"models": {"S3Rec": {"pretrain_epochs": 2}}}}
    suite = write_suite(tiny_root / "suite.yaml", variants, datasets=datasets)
    code, out, payload = run_main(tiny_root, suite, "--seeds", "1", "--set", "epochs=30", "--set", "stopping_step=0")
    assert code == 0
    runs = {r["variant"]: r for r in payload["runs"]}
    for name, stage in (("SASRec", "train"), ("S3Rec", "finetune"), ("CRSPretrain", "finetune")):
        run = runs[name]
        # Early stopping ended every run before its cap; epochs_run counts the trained stage's epochs only.
        assert 1 <= run["epochs_run"] < 30 and run["final_config"]["epochs"] == 30, name
        assert run["epochs_run"] == len(run["epoch_seconds"][stage]), name
        assert sum(entry["cpu_s"] for entry in run["stages"]) <= run["cpu_s"] + 0.02, name
    s3rec = runs["S3Rec"]
    assert [(e["stage"], e.get("epochs")) for e in s3rec["stages"]] == [("pretrain", 2), ("finetune", None)]
    assert len(s3rec["epoch_seconds"]["pretrain"]) == 2 and 0 <= s3rec["stages"][0]["train_cpu_s"] <= s3rec["stages"][0]["cpu_s"]
    ours = runs["CRSPretrain"]
    assert list(ours["pipeline_cpu_s"]) == ["generator", "pretrain", "finetune"]
    assert min(ours["pipeline_cpu_s"].values()) >= 0
    assert sum(ours["pipeline_cpu_s"].values()) <= ours["stages"][0]["cpu_s"] + 0.02
    markdown = open(os.path.join(out, "results.md")).read()
    assert "†" not in markdown and "S3Rec: pretrain 2 epochs" in markdown and "CRSPretrain: generator 1 epochs" in markdown

    # One epoch: every run hits its cap, and the table says so.
    code, out, payload = run_main(tiny_root, suite, "--seeds", "1", "--models", "SASRec", "--overwrite")
    assert payload["runs"][0]["epochs_run"] == 1
    assert parse_tables(open(os.path.join(out, "results.md")).read())["tiny-crs"][1]["SASRec"]["epochs"] == "1.0 †"


def test_a_two_stage_variant_needs_its_pre_training_epochs_from_the_suite(tiny_root, capsys):
    common = {"epochs": 1, "hidden_size": 8}
    suite = write_suite(tiny_root / "suite.yaml", {"S3Rec": {"model": "S3Rec", "pretrain": {}}}, common=common)
    raw = yaml.safe_load(open(suite))
    del raw["common"]["pretrain_epochs"]  # write_suite sets one for every run
    yaml.safe_dump(raw, open(suite, "w"))
    code, _, payload = run_main(tiny_root, suite, "--seeds", "1")
    assert code == 2 and payload is None  # S3Rec's own default (500 epochs) never sets the budget silently
    assert "set it in datasets.tiny-crs.models.S3Rec" in capsys.readouterr().err
    raw["datasets"] = {"tiny-crs": {"models": {"S3Rec": {"pretrain_epochs": 3}}}}
    yaml.safe_dump(raw, open(suite, "w"))
    (spec,) = benchmark.plan_runs(benchmark.load_suite(suite), ["tiny-crs"], ["S3Rec"], [1], str(tiny_root), "/o")
    assert spec.pretrain_config["pretrain_epochs"] == spec.pretrain_config["save_step"] == 3


# ----------------------------------------------------------------------------------------------------------
# The tuned-values layer
# ----------------------------------------------------------------------------------------------------------
def _tuned_suite(root, tuned_values):
    variants = {"SASRec": {"model": "SASRec", "config": {"learning_rate": 0.1}},
                "S3Rec": {"model": "S3Rec", "pretrain": {}},
                "SASRec-long": {"model": "SASRec", "tuned_from": "SASRec", "config": {"MAX_ITEM_LIST_LENGTH": 4}}}
    suite = write_suite(root / "suite.yaml", variants)
    raw = yaml.safe_load(open(suite))
    raw["tuned"] = "tuned.yaml"
    yaml.safe_dump(raw, open(suite, "w"))
    with open(root / "tuned.yaml", "w") as f:
        yaml.safe_dump({"tiny-crs": {name: {"values": values, "trials": 9} for name, values in tuned_values.items()}}, f)
    return suite


def test_tuned_values_are_a_layer_after_the_variant_and_before_set(tiny_root, capsys):
    suite_path = _tuned_suite(tiny_root, {"SASRec": {"learning_rate": 0.2, "hidden_dropout_prob": 0.5},
                                          "S3Rec": {"hidden_dropout_prob": 0.1}})
    suite = benchmark.load_suite(suite_path)
    assert suite.tuned == str(tiny_root / "tuned.yaml")
    tuned = benchmark.load_tuned(suite.tuned)
    specs = {s.variant: s for s in benchmark.plan_runs(suite, ["tiny-crs"], list(suite.variants), [1],
                                                       str(tiny_root), "/o", tuned=tuned)}
    assert specs["SASRec"].config["learning_rate"] == 0.2 and specs["SASRec"].tuned["hidden_dropout_prob"] == 0.5
    # tuned_from: the other variant's values, over this variant's own config.
    assert specs["SASRec-long"].config["learning_rate"] == 0.2 and specs["SASRec-long"].config["MAX_ITEM_LIST_LENGTH"] == 4
    # A two-stage variant: the fine-tuning stage gets the values, its pre-training stage the untuned layers.
    assert specs["S3Rec"].config["hidden_dropout_prob"] == 0.1
    assert "hidden_dropout_prob" not in specs["S3Rec"].pretrain_config and specs["S3Rec"].pretrain_config["seed"] == 1
    overridden = benchmark.plan_runs(suite, ["tiny-crs"], ["SASRec"], [1], str(tiny_root), "/o",
                                     overrides={"learning_rate": 0.3}, tuned=tuned)
    assert overridden[0].config["learning_rate"] == 0.3  # --set wins

    # A run records the values it used; --tuned none runs the variant's own config.
    code, _, payload = run_main(tiny_root, suite_path, "--seeds", "1", "--models", "SASRec")
    assert code == 0 and payload["runs"][0]["tuned"] == {"learning_rate": 0.2, "hidden_dropout_prob": 0.5}
    assert payload["runs"][0]["final_config"]["learning_rate"] == 0.2 and payload["tuned_file"] == suite.tuned
    code, _, payload = run_main(tiny_root, suite_path, "--seeds", "1", "--models", "SASRec", "--tuned", "none",
                                "--overwrite")
    assert payload["runs"][0]["tuned"] is None and payload["runs"][0]["final_config"]["learning_rate"] == 0.1


@pytest.mark.parametrize("content, message", [
    (None, "tuned file '.*' does not exist: write it with --tune, or pass --tuned none"),
    ({"tiny-crs": {"SASRec": {"learning_rate": 0.2}}}, r"tiny-crs.SASRec needs a mapping 'values'"),
    ({"tiny-crs": {"SASRec": {"values": {"hiden_dropout_prob": 0.2}}}},
     r"the tuned values of tiny-crs.SASRec sets \['hiden_dropout_prob'\]"),
])
def test_a_bad_tuned_file_stops_before_any_run(tiny_root, capsys, content, message):
    import re

    suite = _tuned_suite(tiny_root, {})
    if content is None:
        os.remove(tiny_root / "tuned.yaml")
    else:
        yaml.safe_dump(content, open(tiny_root / "tuned.yaml", "w"))
    code, _, payload = run_main(tiny_root, suite, "--seeds", "1", "--models", "SASRec")
    assert code == 2 and payload is None
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(message, err), err


def test_export_config_writes_the_suite_layers_of_each_dataset_and_variant(tiny_root):
    suite_path = _tuned_suite(tiny_root, {"SASRec": {"learning_rate": 0.2}})
    export = tiny_root / "export"
    code, _, _ = run_main(tiny_root, suite_path, "--export-config", str(export), "--models", "SASRec,S3Rec",
                          "--set", "epochs=3")
    assert code == 0
    assert sorted(os.listdir(export)) == ["tiny-crs-S3Rec.pretrain.yaml", "tiny-crs-S3Rec.yaml", "tiny-crs-SASRec.yaml"]
    suite = benchmark.load_suite(suite_path)
    for name, stage in (("SASRec", ""), ("S3Rec", ""), ("S3Rec", ".pretrain")):
        exported = yaml.safe_load(open(export / f"tiny-crs-{name}{stage}.yaml"))
        (spec,) = benchmark.plan_runs(suite, ["tiny-crs"], [name], [suite.base_seed], str(tiny_root), "/o",
                                      overrides={"epochs": 3})  # the untuned run of the suite's first seed
        planned = dict(spec.pretrain_config if stage else spec.config)
        del planned["checkpoint_dir"]  # each run's own folder: run_hyper.py's trials get theirs
        assert exported == planned
    assert yaml.safe_load(open(export / "tiny-crs-SASRec.yaml"))["learning_rate"] == 0.1  # no tuned values


# ----------------------------------------------------------------------------------------------------------
# --tune: run_hyper.py per dataset and variant, the best values on validation into the tuned file
# ----------------------------------------------------------------------------------------------------------
def test_tune_writes_the_best_validation_values_and_the_suite_reruns_the_chosen_trial(tiny_root, capsys):
    suite_path = _tuned_suite(tiny_root, {})
    with open(tiny_root / "tuned.yaml", "w") as f:  # another dataset's entry, to be kept
        yaml.safe_dump({"other": {"SASRec": {"values": {"learning_rate": 0.5}, "trials": 9}}}, f)
    params = tiny_root / "lr.hyper"
    params.write_text("learning_rate choice [0.01, 0.001]\n")
    # S3Rec: two stages, the longer path (a one-stage variant skips the pre-training only).
    code, out, _ = run_main(tiny_root, suite_path, "--tune", "--datasets", "tiny-crs", "--models", "S3Rec",
                            "--params-file", str(params), "--set", "epochs=3")
    assert code == 0, capsys.readouterr().err
    tuned = yaml.safe_load(open(tiny_root / "tuned.yaml"))
    assert tuned["other"]["SASRec"]["values"] == {"learning_rate": 0.5}
    assert list(tuned["tiny-crs"]) == ["S3Rec"]
    for name in ("S3Rec",):
        entry = tuned["tiny-crs"][name]
        trials, best = read_result_file(os.path.join(out, "tuning", "tiny-crs", name, "hyper.result"))
        assert sorted(p["learning_rate"] for p, _ in trials) == [0.001, 0.01] and entry["trials"] == 2
        # The values of the best validation score (run_hyper.py's own choice too).
        assert entry["values"] == best_trial(trials)[0] == best[0]
        assert entry["best_valid_score"] == max(r["best_valid_score"] for _, r in trials)
        assert entry["valid_metric"] == "NDCG@3 (confirmed)" and entry["params_file"] == str(params)
        assert entry["search"].startswith("python run_hyper.py --config_files ") and "--algo exhaustive" in entry["search"]
        assert "--tune" in entry["command"] and entry["date"]
    assert open(tiny_root / "tuned.yaml").read().startswith("# Tuned values of the benchmark suite")
    # The S3Rec searches fine-tuned from one pre-trained checkpoint, pre-trained once.
    assert os.path.exists(os.path.join(out, "tuning", "tiny-crs", "S3Rec", "pretrain", "run.log"))

    # The suite with the tuned values reruns the chosen trial: same seed, same layers, same early stopping.
    code, _, payload = run_main(tiny_root, suite_path, "--seeds", "1", "--models", "S3Rec", "--set", "epochs=3",
                                out_name="suite")
    assert code == 0
    for run in payload["runs"]:
        entry = tuned["tiny-crs"][run["variant"]]
        assert run["tuned"] == entry["values"]
        assert run["best_valid_score"] == pytest.approx(entry["best_valid_score"], abs=1e-12)


def test_tune_needs_named_datasets_and_variants(tiny_root, capsys):
    suite = _tuned_suite(tiny_root, {})
    assert run_main(tiny_root, suite, "--tune", "--models", "SASRec")[0] == 2
    assert "name them with --datasets and --models" in capsys.readouterr().err
    assert run_main(tiny_root, suite, "--tune", "--datasets", "tiny-crs", "--models", "SASRec-long")[0] == 2
    assert "reads the tuned values of 'SASRec' (tuned_from): tune that one" in capsys.readouterr().err
    # a tuned file that does not exist yet: --tune starts it (and gets as far as the variant check), a run refuses it
    new = str(tiny_root / "new-tuned.yaml")
    assert run_main(tiny_root, suite, "--tune", "--datasets", "tiny-crs", "--models", "SASRec-long", "--tuned", new)[0] == 2
    assert "tune that one" in capsys.readouterr().err
    assert run_main(tiny_root, suite, "--seeds", "1", "--models", "SASRec", "--tuned", new)[0] == 2
    assert f"tuned file '{new}' does not exist" in capsys.readouterr().err


def test_benchmark_params_files_give_every_tuned_model_the_same_grid():
    from recbole_crs.tuning.objective import check_config

    hyper_dir = os.path.join(REPO_ROOT, "benchmarks", "hyper")
    files = sorted(os.listdir(hyper_dir))
    suite = benchmark.load_suite(os.path.join(REPO_ROOT, "benchmarks", "suite.yaml"))
    assert {"CRSPretrain.hyper", "SASRec.hyper", "S3Rec.hyper", "GRU4Rec.hyper"} <= set(files)
    grids = {}
    for name in files:
        model = name[: -len(".hyper")]
        assert model in {v.model for v in suite.variants.values()}, name
        params = parse_params_file(os.path.join(hyper_dir, name))
        assert all(p.kind == "choice" for p in params) and grid_size(params) == 4, name
        grids[model] = {p.name: p.values for p in params}
        config = check_config({"model": model, "dataset": "ml-100k"}, None)
        assert all(p.name in config.final_config_dict for p in params), name  # no misspelt key
    assert len({grid["learning_rate"] for grid in grids.values()}) == 1
    dropouts = {tuple(values) for grid in grids.values() for key, values in grid.items() if key != "learning_rate"
                and "dropout" in key}
    assert len(dropouts) == 1 and set(grids["SASRec"]) == {"learning_rate", "hidden_dropout_prob"}
    assert set(grids["GRU4Rec"]) == {"learning_rate", "dropout_prob"}


def test_read_result_file_gives_back_what_write_result_file_wrote(tmp_path):
    from recbole_crs.tuning.results import write_result_file

    trials = [({"learning_rate": 0.01, "hidden_dropout_prob": 0.2}, {"best_valid_score": 0.25,
                "best_valid_result": {"ndcg@10": 0.25}, "test_result": {"ndcg@10": 0.9}}),
              ({"learning_rate": 0.001, "hidden_dropout_prob": 0.5}, {"error": "RuntimeError: boom"}),
              ({"learning_rate": 0.002, "hidden_dropout_prob": 0.1}, {"best_valid_score": 0.5,
                "best_valid_result": {"ndcg@10": 0.5}, "test_result": {"ndcg@10": 0.1}})]
    write_result_file(tmp_path / "r.result", trials, trials[2])
    read, best = read_result_file(tmp_path / "r.result")
    assert [p for p, _ in read] == [p for p, _ in trials]
    assert [r.get("best_valid_score", r.get("error")) for _, r in read] == [0.25, "RuntimeError: boom", 0.5]
    assert best == (trials[2][0], {"best_valid_score": 0.5})
    # The best is chosen on validation: the trial with the best test score (0.9) is not it.
    assert best_trial(read) == (trials[2][0], 0.5) and best_trial(read, bigger=False) == (trials[0][0], 0.25)
    assert json.dumps(read)  # plain values


def test_every_transformer_of_the_suite_has_one_encoder_size(tmp_path, monkeypatch):
    """Final configs of every variant on both datasets: one size for every Transformer, CRSPretrain's attribute
    Transformer and its SASRec generator included, and one dropout."""
    from recbole_crs.config import Config
    from recbole_crs.model.generator_sasrec import generator_config

    monkeypatch.chdir(tmp_path)
    suite = benchmark.load_suite(os.path.join(REPO_ROOT, "benchmarks", "suite.yaml"))
    keys = ("hidden_size", "inner_size", "n_layers", "n_heads", "hidden_dropout_prob", "attn_dropout_prob",
            "MAX_ITEM_LIST_LENGTH")
    sizes = set()
    for spec in benchmark.plan_runs(suite, ["ml-100k-crs-targets", "lastfm-precrs"], list(suite.variants), [1],
                                    str(tmp_path), str(tmp_path)):
        if spec.config["model"] in ("Pop", "AttrFM", "GRU4Rec"):
            continue
        for stage_config in filter(None, (spec.config, spec.pretrain_config)):
            config = Config(spec.config["model"], spec.dataset, config_dict=stage_config)
            sizes.add(tuple(config[key] for key in keys))
            if spec.config["model"] == "CRSPretrain":
                assert config["attribute_n_layers"] == config["n_layers"]
                generator = generator_config(config)
                sizes.add(tuple(generator[key] for key in keys))
    assert sizes == {(32, 64, 1, 2, 0.2, 0.2, 20)}
