"""Multi-process runs (RecBole's distributed mode) on the CPU with gloo: 2 processes on the tiny dataset.

* the launcher runs every CRSPretrain stage and writes one checkpoint per saved model, whose 1-process evaluation
  equals the 2-process one;
* 2-process evaluation of a fixed checkpoint equals 1-process evaluation in every candidate mode, on a test set
  whose size makes the distributed sampler pad (odd rows over 2 ranks), with the dataloaders the 1-process run
  saved;
* one pre-training step on 2 ranks with different shards leaves identical parameters on both (discriminator and
  joint-mode generator), even from different initialisations; so does an epoch of the generator and fine-tuning
  trainers (RecBole's loop);
* bad launcher options (an address that does not resolve, more CPU processes than cores) fail in the parent
  with one line (exit 2), before any process starts;
* `save_dataloaders` in a 2-process run writes one file holding every row (not one rank's shard), and the 2 processes
  of a run that reads such a file each take their share; only rank 0 writes tensorboard event files.

Every spawned process imports torch and RecBole again: the tests share few spawns and small configs.
"""

import glob
import os
import socket
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tiny_data import ITEM_ATTRIBUTES, USER_SEQUENCES, tiny_config, write_tiny_dataset

MODES = ["all", "first", "confirmed", "authors"]
# Three users more than tests/tiny_data.py: 7 test rows and 7 validation rows, an odd count on 2 ranks.
EXTRA_USERS = {
    "u5": [("i3", ["b"], []), ("i6", ["b"], ["i1"]), ("i4", ["c"], []), ("i1", ["a", "b"], ["i2"]), ("i6", ["b"], ["i3"])],
    "u6": [("i5", ["c"], []), ("i2", ["a"], ["i5"]), ("i6", ["b"], []), ("i3", ["c", "b"], ["i4"]), ("i1", ["a"], [])],
    "u7": [("i1", ["b"], []), ("i4", ["c"], ["i3"]), ("i2", ["a"], ["i1"]), ("i5", ["a", "c"], []), ("i4", ["c"], ["i5"])],
}
# The authors' protocol: a fixed candidate list per validation (t = 3) and test (t = 4) row.
CANDIDATES = ["i2 i3", "i1", "i6 i4 i5", "", "i2 i5 i6", "i3 i4", "i6 i1 i3"]
FAST = {"epochs": 2, "train_batch_size": 4, "pretrain_epochs": 1, "generator_epochs": 1, "pretrain_batch_size": 4,
        "mask_ratio": 0.5, "crs_test_modes": MODES}


def free_port():
    with socket.socket() as handle:
        handle.bind(("localhost", 0))
        return handle.getsockname()[1]


def write_dataset(root):
    """tests/tiny_data.py's dataset with 7 users and a candidate_items column (for the authors mode)."""
    users = {**USER_SEQUENCES, **EXTRA_USERS}
    folder = write_tiny_dataset(str(root), item_attributes=ITEM_ATTRIBUTES, user_sequences=users)
    path = os.path.join(folder, "tiny-crs.inter")
    lines = open(path).read().splitlines()
    out = [lines[0] + "\tcandidate_items:token_seq"]
    for line in lines[1:]:
        user, _, t = line.split("\t")[:3]
        out.append(line + "\t" + (CANDIDATES[int(user[1:]) - 1] if t in ("3", "4") else ""))
    open(path, "w").write("\n".join(out) + "\n")


@pytest.fixture
def root(tiny_root):
    write_dataset(tiny_root)
    return tiny_root


def rank_config(root, rank, port, **overrides):
    """A config_dict of process ``rank`` of a 2-process run, as the launcher hands it."""
    return {**tiny_config(root, **FAST), **overrides, "local_rank": rank, "nproc": 2, "world_size": 2,
            "ip": "localhost", "port": port, "offset": 0}


def spawn(function, *args):
    """Run ``function(rank, *args, queue)`` in 2 spawned processes; returns what rank 0 put into the queue."""
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(function, args=(*args, queue), nprocs=2, join=True)
    return queue.get()


# ---------------------------------------------------------------------------------------------- processes
def _evaluate(rank, root, port, checkpoint, cache, queue):
    """Process ``rank``: evaluate ``checkpoint`` (SASRec) on the validation and test sets in every mode, with the
    dataloaders of a 1-process run's ``cache`` (each rank takes its share of its rows)."""
    from recbole.data import data_preparation

    from recbole_crs.artifacts import safe_load_split_dataloaders
    from recbole_crs.quick_start import build_config, build_model, create_dataset
    from recbole_crs.trainer.distributed import sampler_rows
    from recbole_crs.trainer import get_trainer

    config = build_config("SASRec", "tiny-crs", config_dict=rank_config(root, rank, port, dataloaders_save_path=cache))
    assert config["single_spec"] is False and dist.get_backend() == "gloo" and str(config["device"]) == "cpu"
    dataset = create_dataset(config)
    assert safe_load_split_dataloaders(config) is not None  # the cache is read, not rebuilt
    train_data, valid_data, test_data = data_preparation(config, dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, build_model(config, train_data))
    out = {"rows": len(sampler_rows(test_data))}
    for name, data in (("valid", valid_data), ("test", test_data)):
        out[name] = trainer.evaluate_modes(data, MODES, model_file=checkpoint)
        out[name + "_by_turn"] = dict(trainer.results_by_turn)
    dist.destroy_process_group()
    if rank == 0:
        queue.put(out)


def _flat(module):
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def _all_equal(tensor):
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def _pretrain_step(rank, root, port, queue):
    """Process ``rank``: one joint-mode pre-training step on its shard, from a rank-specific initialisation."""
    from recbole.data import data_preparation
    from recbole.utils import init_seed

    from recbole_crs.model.crspretrain import CRSPretrain
    from recbole_crs.model.generator_sasrec import stage_config
    from recbole_crs.model.negative_generator import NegativeGenerator
    from recbole_crs.pipeline import pretrain_dataloader
    from recbole_crs.quick_start import build_config, create_dataset
    from recbole_crs.trainer.stages import CRSPretrainTrainer

    overrides = {"negative_sampler": "generator", "generator_mode": "joint", "pretrain_stride": 1,
                 "pretrain_batch_size": 1000}  # global batch: every row, so one step on each rank's half
    config = build_config("CRSPretrain", "tiny-crs", config_dict=rank_config(root, rank, port, **overrides))
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    config = stage_config(config, model="CRSPretrain")
    init_seed(config["seed"] + rank, config["reproducibility"])  # different on purpose: rank 0's must win
    generator, model = NegativeGenerator(config, dataset), CRSPretrain(config, dataset)
    initially_different = not _all_equal(_flat(model)) and not _all_equal(_flat(generator))
    trainer = CRSPretrainTrainer(config, model, generator=generator)
    start = {"discriminator": _flat(model), "generator": _flat(generator)}
    data = pretrain_dataloader(config, train_data)
    data.sampler.set_epoch(0)
    shard = [sorted(batch[dataset.uid_field].tolist()) for batch in data]
    losses = trainer._train_epoch(data, 0)
    out = {"initially_different": initially_different, "steps": len(shard), "losses": len(losses)}
    for name, module in (("discriminator", model), ("generator", generator)):
        after = _flat(module)
        out[name + "_changed"] = not torch.equal(after, start[name])
        out[name + "_synced_start"] = _all_equal(start[name])
        out[name + "_equal"] = _all_equal(after)
    shards = [None, None]
    dist.all_gather_object(shards, shard)
    out["shards"] = shards
    out["recbole_loop"] = _recbole_loop_steps(config, dataset, train_data, rank)
    out["averaged"] = _average_by_hand(rank)
    dist.destroy_process_group()
    if rank == 0:
        queue.put(out)


def _recbole_loop_steps(config, dataset, train_data, rank):
    """The generator and fine-tuning trainers (RecBole's _train_epoch, DDP's gradient hook): one epoch each from
    rank-specific initialisations; ``{trainer: (parameters changed, equal on every rank)}``."""
    from recbole.utils import init_seed

    from recbole_crs.model.crsfinetune import CRSFinetune
    from recbole_crs.model.generator_sasrec import generator_config, stage_config
    from recbole_crs.model.negative_generator import NegativeGenerator
    from recbole_crs.pipeline import pretrain_dataloader
    from recbole_crs.trainer.stages import CRSFinetuneTrainer, CRSGeneratorTrainer

    init_seed(config["seed"] + rank, config["reproducibility"])
    sasrec_config = generator_config(config)
    finetune_config = stage_config(config, model="CRSFinetune", train_batch_size=4)
    sasrec = NegativeGenerator(config, dataset).sasrec
    generator_trainer = CRSGeneratorTrainer(sasrec_config, sasrec)
    finetune_model = CRSFinetune(finetune_config, dataset)
    finetune_model.set_history_prior(sasrec)  # as the pipeline does, before the trainer (here: the untrained SASRec)
    finetune_trainer = CRSFinetuneTrainer(finetune_config, finetune_model)
    out = {}
    for name, trainer, data in (
        ("generator", generator_trainer, pretrain_dataloader(sasrec_config, train_data)),
        ("finetune", finetune_trainer, train_data),
    ):
        start = _flat(trainer.model)
        trainer._train_epoch(data, 0)
        out[name] = (not torch.equal(_flat(trainer.model), start), _all_equal(_flat(trainer.model)))
    return out


def _average_by_hand(rank):
    """average_gradients on 3 parameters: a gradient on both ranks, on rank 0 only, on neither."""
    from recbole_crs.trainer.distributed import average_gradients

    both, only0, neither = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    both.grad = torch.full((2,), float(rank + 1))  # 1 and 2 -> 1.5
    if rank == 0:
        only0.grad = torch.tensor([4.0, -4.0])  # and a zero gradient on rank 1 -> 2, -2
    average_gradients([both, only0, neither])
    return both.grad.tolist(), only0.grad.tolist(), neither.grad


# ---------------------------------------------------------------------------------------------- tests
def test_launcher_runs_every_stage_in_two_processes_with_one_file_per_model(root):
    """`quick_start.run(nproc=2)` (what `run_recbole_crs.py --model CRSPretrain --nproc=2` calls), and the
    done-when of issue 10: its test evaluation equals the 1-process evaluation of the same checkpoint."""
    from recbole_crs.quick_start import load_data_and_model, run
    from recbole_crs.trainer.stages import CRSFinetuneTrainer

    config_dict = tiny_config(root, **FAST)
    result = run("CRSPretrain", "tiny-crs", config_dict=config_dict, nproc=2, port=free_port())
    assert set(result["test_results"]) == set(MODES)

    files = sorted(os.path.basename(path) for path in glob.glob(os.path.join(config_dict["checkpoint_dir"], "*")))
    assert len(files) == 3 and all(name.endswith(".pth") for name in files), files  # no per-rank copies, no .tmp
    assert [name.split("-tiny-crs-")[0] for name in files] == ["CRSFinetune", "CRSPretrain", "SASRec"]
    (finetuned,) = glob.glob(os.path.join(config_dict["checkpoint_dir"], "CRSFinetune-*.pth"))

    config, model, _, _, _, test_data = load_data_and_model(finetuned)  # a 2-process checkpoint, in one process
    assert config["single_spec"] is True and "world_size" not in config.final_config_dict
    trainer = CRSFinetuneTrainer(config, model)
    assert trainer.evaluate_modes(test_data, MODES, load_best_model=False) == result["test_results"]
    assert {mode: trainer.results_by_turn[mode] for mode in MODES} == result["test_results_by_turn"]


def test_two_process_evaluation_equals_one_process_in_every_mode(root):
    from recbole.data import data_preparation

    from recbole_crs.quick_start import build_config, build_model, create_dataset
    from recbole_crs.trainer import get_trainer

    config = build_config("SASRec", "tiny-crs", config_dict=tiny_config(root, **FAST, save_dataloaders=True))
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    (cache,) = glob.glob(os.path.join(config["checkpoint_dir"], "tiny-crs-for-SASRec-dataloader-*.pth"))
    assert len(test_data._dataset) % 2 == 1 and len(valid_data._dataset) % 2 == 1  # the sampler pads
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, build_model(config, train_data))
    trainer._save_checkpoint(0, verbose=False)  # an untrained SASRec: ranks of every kind, ties included
    checkpoint = trainer.saved_model_file
    single = {}
    for name, data in (("valid", valid_data), ("test", test_data)):
        single[name] = trainer.evaluate_modes(data, MODES, model_file=checkpoint)
        single[name + "_by_turn"] = dict(trainer.results_by_turn)
    assert len({result["mrr@3"] for result in single["test"].values()}) > 1  # the modes rank differently

    two = spawn(_evaluate, str(root), free_port(), checkpoint, cache)
    assert two["rows"] == (len(test_data._dataset) + 1) // 2  # each rank scored its half, one row padded
    for key in single:
        assert two[key] == single[key], key


def test_one_pretraining_step_leaves_identical_parameters_on_every_rank(root):
    out = spawn(_pretrain_step, str(root), free_port())
    assert out["initially_different"]  # built from different seeds on the two ranks...
    assert out["discriminator_synced_start"] and out["generator_synced_start"]  # ...rank 0's taken by both
    assert out["steps"] == 1 and out["losses"] == 3  # mip, sad, generator
    first, second = out["shards"]
    assert first != second  # different data on the two ranks
    assert out["discriminator_changed"] and out["generator_changed"]
    assert out["discriminator_equal"] and out["generator_equal"]
    assert out["recbole_loop"] == {"generator": (True, True), "finetune": (True, True)}
    assert out["averaged"] == ([1.5, 1.5], [2.0, -2.0], None)  # on rank 0; ranks agree by construction


# ---------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--nproc=0"], "error: nproc must be an integer >= 1, got 0"),
        (["--nproc=two"], "error: nproc must be an integer >= 1, got 'two'"),
        (["--nproc=2", "--world_size=1"], "error: world_size=1 is smaller than group_offset + nproc = 0 + 2"),
        (["--nproc=2", "--group_offset=2"], "error: group_offset=2 places this machine's processes after others"),
        (["--nproc=2", "--port=99999"], "error: port must be a port number in [1, 65535], got 99999"),
        (["--nproc=2", "--ip=no-such-host.invalid"], "error: ip 'no-such-host.invalid' does not resolve to an address"),
        (["--nproc=1000"], "error: nproc=1000 CPU processes on a machine with "),
        (["--nproc=2", "--rendezvous_timeout=0"], "error: rendezvous_timeout must be a number > 0 (or ~), got 0"),
    ],
)
def test_bad_launcher_options_exit_2_before_any_process(root, argv, message, capsys, monkeypatch):
    import run_recbole_crs
    from recbole_crs import quick_start

    monkeypatch.setattr(quick_start, "run_recbole_crses", None)  # spawning would fail loudly
    assert run_recbole_crs.main(["--model=SASRec", "--dataset=tiny-crs", f"--data_path={root}", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1, err


def test_a_bad_config_fails_in_the_parent_before_any_process(root, capsys, monkeypatch):
    import run_recbole_crs
    from recbole_crs import quick_start

    monkeypatch.setattr(quick_start, "run_recbole_crses", None)
    argv = ["--model=SASRec", "--dataset=tiny-crs", f"--data_path={root}", "--nproc=2", "--epoch=1"]
    assert run_recbole_crs.main(argv) == 2
    assert "error: epoch (on the command line) is not a setting" in capsys.readouterr().err


def test_a_data_error_in_the_processes_is_one_line_and_exit_2(tiny_root, capsys, monkeypatch):
    """What only the processes find (here: the dataset's files, read after the launch) still ends as one
    `error:` line and status 2, with both processes stopped, and no temporary file left (torch's spawn writes a
    process's traceback to <tmp>/pytorch-errorfile-*, which nothing removed)."""
    import tempfile

    import run_recbole_crs

    header = "user_id:token\titem_id:token\ttimestamp:float\tconfirmed:token_seq\trejected_items:token_seq"
    write_tiny_dataset(str(tiny_root), inter_header=header)  # no confirmed_attributes column
    (tiny_root / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tiny_root / "tmp"))
    argv = ["--model=SASRec", "--dataset=tiny-crs", "--nproc=2", f"--port={free_port()}", f"--data_path={tiny_root}",
            f"--checkpoint_dir={tiny_root / 'saved'}", "--epochs=1", "--use_gpu=False", "--state=ERROR"]
    assert run_recbole_crs.main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Conversation field 'confirmed_attributes' not found" in lines[0], err
    assert lines[0].startswith("error: ") and os.listdir(tiny_root / "tmp") == []


def _rows(loader):
    """The dataset rows a dataloader yields in one pass (evaluation batches are tuples)."""
    return sum(len(batch[0] if isinstance(batch, tuple) else batch) for batch in loader)


def test_saved_dataloaders_of_two_processes_hold_every_row(root):
    """issue 15: every rank wrote the same file with its own shard; one process reloading it trained and tested on
    half the rows. Now rank 0 writes one-process loaders (a 2-process run reading such a file takes its shares:
    test_two_process_evaluation_equals_one_process_in_every_mode). Only rank 0 writes tensorboard events."""
    from recbole_crs.artifacts import safe_load_split_dataloaders
    from recbole_crs.quick_start import build_config, create_dataset, run

    config_dict = tiny_config(root, **{**FAST, "epochs": 1, "crs_test_modes": ["all"], "save_dataloaders": True})
    run("SASRec", "tiny-crs", config_dict=config_dict, nproc=2, port=free_port())
    saved = os.listdir(config_dict["checkpoint_dir"])
    (cache,) = glob.glob(os.path.join(config_dict["checkpoint_dir"], "tiny-crs-for-SASRec-dataloader-*.pth"))
    assert len(saved) == 2 and not [name for name in saved if ".tmp-" in name], saved  # the cache and the model
    events = glob.glob(os.path.join("log_tensorboard", "**", "events.out.tfevents.*"), recursive=True)
    assert events and len({os.path.basename(path).split(".")[-2] for path in events}) == 1  # one writer's pid

    config = build_config("SASRec", "tiny-crs", config_dict={**config_dict, "dataloaders_save_path": cache})
    create_dataset(config)  # as data_preparation sees it: the dataset has set its config (aliases) first
    loaders = safe_load_split_dataloaders(config)
    assert loaders is not None  # read from the file, not rebuilt
    assert [_rows(loader) for loader in loaders] == [len(loader._dataset) for loader in loaders]


def test_launcher_options_go_to_the_launcher_and_config_values_to_every_process(root, monkeypatch):
    import run_recbole_crs
    from recbole_crs import quick_start

    seen = {}

    def fake_run(**kwargs):
        seen.update(kwargs, argv=list(sys.argv))

    monkeypatch.setattr(quick_start, "run", fake_run)
    argv = ["--model=CRSPretrain", "--dataset=tiny-crs", "--nproc=2", "--port=6000", "--ip=10.0.0.1",
            "--world_size=4", "--group_offset=2", "--epochs=1"]
    assert run_recbole_crs.main(argv) == 0
    assert {key: seen[key] for key in ("nproc", "world_size", "ip", "port", "group_offset")} == {
        "nproc": 2, "world_size": 4, "ip": "10.0.0.1", "port": 6000, "group_offset": 2}
    assert seen["command_line"] == ["--epochs=1"]  # what RecBole's Config reads in each spawned process


def test_several_processes_outside_the_launcher_are_refused(root):
    from recbole_crs.errors import CRSConfigError
    from recbole_crs.quick_start import build_config

    with pytest.raises(CRSConfigError, match=r"^nproc=2 asks for several processes, which only the launcher"):
        build_config("SASRec", "tiny-crs", config_dict=tiny_config(root, nproc=2))
    with pytest.raises(CRSConfigError, match="local_rank is set .* but nproc, world_size, ip, port, offset are not"):
        build_config("SASRec", "tiny-crs", config_dict=tiny_config(root, local_rank=0))
    with pytest.raises(CRSConfigError, match="local_rank=2 must be below nproc=2"):
        build_config("SASRec", "tiny-crs", config_dict=rank_config(root, 2, free_port()))


def test_gathered_rows_drop_the_samplers_padding_by_position():
    """gather_rows in a 1-process gloo group: the rows past the dataset's end (the sampler's padding) are dropped."""
    from recbole_crs.trainer.distributed import gather_rows

    assert not dist.is_initialized(), "no process group may outlive a test of this module"
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"tcp://localhost:{free_port()}")
    try:
        rows = torch.tensor([2, 0, 1, 0])  # the last row repeats row 0 (padding)
        columns = torch.tensor([[20], [0], [10], [99]])
        assert gather_rows(columns, rows, 3).tolist() == [[0], [10], [20]]
    finally:
        dist.destroy_process_group()
