"""``python -m recbole_crs.conversation`` and ``run_conversation`` on the tiny dataset: the files a run writes,
determinism, one ``error:`` line (exit 2, nothing trained) for each bad input, and the interactive mode driven
by scripted input."""

import io
import json
import os
import sys

import pytest
import torch

from recbole_crs.conversation import cli, run_conversation
from recbole_crs.conversation.interactive import play_interactive
from recbole_crs.conversation.policy import Decision, Policy
from recbole_crs.conversation.report import EPISODES_TSV, PLOT_PNG, RESULT_JSON
from recbole_crs.conversation.runner import prepare, resolve_options
from tiny_data import isolated_run_dir, tiny_config, write_tiny_dataset

METRICS = ("SR@5", "SR@10", "SR@15", "AT", "hDCG")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Pop trained on tiny-crs through the runner (quick_start), its checkpoint saved."""
    root = tmp_path_factory.mktemp("conversation")
    write_tiny_dataset(str(root))
    with isolated_run_dir(str(root)):
        setup = prepare(model="Pop", dataset="tiny-crs", config_dict=tiny_config(root, epochs=1))
        yield root, setup


def checkpoints(root):
    folder = os.path.join(root, "saved")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def run_cli(capsys, *argv):
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ---------------------------------------------------------------------------------------------- a run
def test_run_writes_results_plot_and_episodes_and_is_deterministic(trained, capsys):
    root, setup = trained
    out = os.path.join(root, "out")
    result = run_conversation(setup=setup, out=out, policy="MaxEntropy", topk=2, split="test", show_progress=False)
    printed = capsys.readouterr().out
    assert "model" in printed and "MaxEntropy" in printed and printed.count("\n") == 3  # one table
    with open(os.path.join(out, RESULT_JSON), encoding="utf-8") as handle:
        saved = json.load(handle)
    for key in METRICS + ("episodes", "policy", "model", "seconds", "cpu_seconds", "success_by_turn"):
        assert key in saved
    assert saved["episodes"] == 4 and saved["model"] == "Pop" and saved["policy"] == "MaxEntropy"
    assert saved["SR@15"] == saved["success_by_turn"][-1] and len(saved["success_by_turn"]) == 15
    with open(os.path.join(out, PLOT_PNG), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(out, EPISODES_TSV), encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert len(lines) == 5 and lines[0].startswith("user\ttarget\topening")
    again = run_conversation(setup=setup, out=os.path.join(root, "again"), policy="MaxEntropy", topk=2,
                             show_progress=False)
    assert {key: again[key] for key in METRICS} == {key: result[key] for key in METRICS}
    assert not [name for name in os.listdir(out) if ".tmp-" in name]  # written through temporary names


def test_cli_with_a_checkpoint_prints_one_table(trained, capsys):
    root, setup = trained
    status, out, err = run_cli(capsys, "--checkpoint", setup.checkpoint, "--policy", "abs-greedy", "--episodes", "3",
                               "--split", "valid", "--out", os.path.join(root, "cli"), "--no_progress")
    assert status == 0, err
    assert "AbsGreedy" in out
    with open(os.path.join(root, "cli", RESULT_JSON), encoding="utf-8") as handle:
        saved = json.load(handle)
    assert saved["episodes"] == 3 and saved["split"] == "valid" and saved["checkpoint"] == setup.checkpoint


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv, message", [
    (["--policy", "Random"], "--policy 'Random' is not a policy: use one of AbsGreedy, MaxEntropy, ScoreGuided."),
    (["--topk", "0"], "--topk must be >= 1, got 0"),
    (["--max_turns", "0"], "--max_turns must be >= 2, got 0"),
    (["--episodes", "0"], "--episodes must be >= 1, got 0"),
    (["--seed", "-1"], "--seed must be >= 0, got -1: the episodes' random draws take a seed >= 0, e.g. --seed 0.\n"),
    (["--episodes", "some"], "--episodes must be a whole number >= 1, got 'some'"),
    (["--split", "train"], "--split must be one of valid, test, got 'train'"),
    (["--sweep"], "--sweep chooses parameters, so it plays validation episodes only: add --split valid."),
    (["--policy", "MaxEntropy", "--temperature", "2"], "--temperature set ScoreGuided's parameters"),
    (["--temperature", "0"], "--temperature must be > 0, got 0.0"),
    (["--epochs", "2"], "neither options of this command nor --key=value"),
    (["--user", "u1"], "--user is for --interactive"),
])
def test_bad_options_are_one_error_line_before_any_training(trained, capsys, argv, message):
    root, _ = trained
    before = checkpoints(root)
    status, out, err = run_cli(capsys, "--model", "Pop", "--dataset", "tiny-crs", f"--data_path={root}", *argv)
    assert status == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert checkpoints(root) == before


def test_dataset_without_an_attribute_field(trained, capsys):
    root, _ = trained
    write_tiny_dataset(str(root), name="no-attributes", item_header="item_id:token\tgenre:token_seq")
    status, _, err = run_cli(capsys, "--model", "Pop", "--dataset", "no-attributes", f"--data_path={root}")
    assert status == 2 and err.count("\n") == 1
    assert "has no attribute field 'attributes:token_seq'" in err and "columns: item_id:token, genre:token_seq" in err


def test_checkpoint_of_other_data(trained, capsys):
    root, setup = trained
    status, _, err = run_cli(capsys, "--checkpoint", setup.checkpoint, "--dataset", "ml-100k-crs")
    assert status == 2 and err.count("\n") == 1
    assert "was trained on dataset 'tiny-crs', not 'ml-100k-crs'" in err
    status, _, err = run_cli(capsys, "--checkpoint", setup.checkpoint, "--model", "SASRec")
    assert status == 2 and "holds a Pop model, not SASRec" in err
    status, _, err = run_cli(capsys, "--checkpoint", os.path.join(root, "missing.pth"))
    assert status == 2 and err.startswith("error: --checkpoint: Checkpoint") and "does not exist" in err
    status, _, err = run_cli(capsys, "--checkpoint", setup.checkpoint, "--epochs=3")
    assert status == 2 and "with --checkpoint the checkpoint's config is used" in err


def test_checkpoint_whose_data_files_changed(trained, capsys, tmp_path):
    root, setup = trained
    write_tiny_dataset(str(tmp_path))  # the same rows, one interaction changed
    changed = os.path.join(tmp_path, "tiny-crs", "tiny-crs.inter")
    with open(changed, encoding="utf-8") as handle:
        text = handle.read()
    with open(changed, "w", encoding="utf-8") as handle:
        handle.write(text.replace("u4\ti6\t0", "u4\ti4\t0"))
    checkpoint = torch.load(setup.checkpoint, weights_only=True)
    checkpoint["config"]["data_path"] = os.path.join(str(tmp_path), "tiny-crs")
    moved = os.path.join(tmp_path, "moved.pth")
    torch.save(checkpoint, moved)
    status, _, err = run_cli(capsys, "--checkpoint", moved)
    assert status == 2 and err.count("\n") == 1 and "was trained on other contents of dataset 'tiny-crs'" in err


# ---------------------------------------------------------------------------------------------- interactive
class AskCThenRecommend(Policy):
    """A scripted policy: ask attribute c at the first action, recommend afterwards."""

    name = "Scripted"

    def decide(self, view, scores=None):
        first = view.actions == 0
        c = self.catalogue_c
        return Decision(~first, torch.where(first, torch.full_like(view.actions, c), torch.zeros_like(view.actions)))


def interactive(setup, policy, text, **options):
    resolved, _ = resolve_options(**options)
    output = io.StringIO()
    outcome = play_interactive(setup, policy, resolved, input_stream=io.StringIO(text), output_stream=output)
    return outcome, output.getvalue()


def test_interactive_question_then_list(trained):
    _, setup = trained
    policy = AskCThenRecommend(setup.catalogue, 10)
    policy.catalogue_c = setup.dataset.token2id(setup.dataset.attribute_field, "c")
    # opening "zzz" (unknown, asked again), then b: i1 i3 i6; "Does your item have 'c'?" maybe -> again -> y: i3
    outcome, text = interactive(setup, policy, "zzz\nb\nmaybe\ny\n1\n", topk=10)
    assert "'zzz' is not an attribute of any item" in text and "Please answer y or n." in text
    assert "Does your item have 'c'? [y/n]" in text and " 1. i3  (b c)" in text
    assert outcome == {"success_action": 2, "rank": 1, "actions": 2}


def test_interactive_rejects_a_list_and_accepts_the_next(trained):
    _, setup = trained
    from recbole_crs.conversation.policies import make_policy

    policy = make_policy("AbsGreedy", setup.catalogue, 2)
    # opening a: i1 i2 i5 (Pop ties: the seeded order decides); the first list of 2 is rejected ("0"), the next
    # holds the one item left, accepted with "1"
    outcome, text = interactive(setup, policy, "a\n7\n0\n1\n", topk=2)
    assert "Please type a number from 0 to 2." in text and text.count("I recommend:") == 2
    assert outcome == {"success_action": 2, "rank": 1, "actions": 2}
    outcome, text = interactive(setup, policy, "a\n", topk=2)
    assert outcome["success_action"] == 0 and "Input ended: conversation stopped." in text


def test_interactive_from_the_command_line(trained, capsys, monkeypatch):
    root, setup = trained
    monkeypatch.setattr(sys, "stdin", io.StringIO("a\n1\n"))
    status, out, err = run_cli(capsys, "--checkpoint", setup.checkpoint, "--policy", "AbsGreedy", "--interactive",
                               "--user", "u2")
    assert status == 0, err
    assert "You are user u2" in out and "Found at turn 1 (rank 1)." in out
    status, _, err = run_cli(capsys, "--checkpoint", setup.checkpoint, "--interactive", "--user", "nobody")
    assert status == 2 and "--user 'nobody' is not a user of tiny-crs" in err


# ---------------------------------------------------------------------------------------------- sweep
def test_sweep_plays_every_combination_on_validation_and_picks_the_highest_sr(trained, capsys):
    from recbole_crs.conversation.sweep import SWEEP_JSON, run_sweep

    root, setup = trained
    options, defaults = resolve_options(policy="ScoreGuided", split="valid", topk=1, max_turns=4)
    defaults = dict(defaults, score_guided={"default": {}, "sweep": {"temperature": [0.5, 50.0],
                                                                     "ask_margin": [0.0, 5.0]}})
    results, best = run_sweep(setup, options, defaults, out=os.path.join(root, "sweep"), show_progress=False)
    assert len(results) == 4 and all(r["split"] == "valid" for r in results)
    assert best["SR@15"] == max(r["SR@15"] for r in results)
    assert best["AT"] == min(r["AT"] for r in results if r["SR@15"] == best["SR@15"])
    with open(os.path.join(root, "sweep", SWEEP_JSON), encoding="utf-8") as handle:
        saved = json.load(handle)
    assert saved["chosen"] == {key: best["policy_parameters"][key] for key in saved["chosen"]}
    assert "record it in properties/conversation.yaml" in capsys.readouterr().out
