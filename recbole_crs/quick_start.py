"""Entry points mirroring ``recbole.quick_start``: run a model (in one process or several), tune it, reload it.

:func:`run` is RecBole's launcher: one process (:func:`run_recbole_crs`), or ``nproc`` spawned processes of a
``torch.distributed`` run (:func:`run_recbole_crses` in each, rank 0's result returned). See the README section
"Multi-process and multi-machine training".
"""

import logging
import os
import sys
import tempfile
from logging import getLogger

import torch.distributed as dist
from recbole.data import data_preparation
from recbole.data.utils import create_dataset as create_recbole_dataset
from recbole.utils import ModelType, get_environment, init_logger, init_seed, set_color

from recbole_crs.artifacts import check_data_fingerprint, load_checkpoint, trusted_torch_load
from recbole_crs.config import Config, get_model, uses_cuda
from recbole_crs.data.dataset import CRSDataset
from recbole_crs.data.ml100k import ensure_builtin, is_builtin
from recbole_crs.errors import CRSConfigError, CRSInputError, OutputError
from recbole_crs.evaluation import format_results_table
from recbole_crs.launcher import end_with_launcher, launch, report_input_error
from recbole_crs.pipeline import run_crs_pretrain_pipeline
from recbole_crs.run_plan import run_plan
from recbole_crs.settings.launch import check_launch, device_errors
from recbole_crs.trainer import get_trainer
from recbole_crs.trainer.distributed import is_distributed
from recbole_crs.validation import validate

# Models whose run is more than "fit one model": the function running the whole pipeline.
PIPELINES = {"CRSPretrain": run_crs_pretrain_pipeline}


def build_config(model=None, dataset=None, config_file_list=None, config_dict=None, command_line=None):
    """:class:`Config`, with the errors RecBole's own Config raises on a wrong value (an unknown model or metric,
    a bad ``topk`` or ``eval_args``, ...) turned into a one-line :class:`CRSConfigError`. ``command_line``: the
    ``--key=value`` arguments (None: RecBole's ``sys.argv[1:]``)."""
    try:
        return Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                      command_line=command_line)
    except CRSInputError:
        raise
    except (ValueError, KeyError, TypeError, NotImplementedError, RuntimeError, SyntaxError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        raise CRSConfigError(" ".join(str(message).split())) from error


def create_dataset(config):
    """The dataset for ``config``: builds a built-in dataset (ml-100k-crs, ml-100k-crs-targets[-X]) on first
    use; CRSDataset for sequential models, RecBole's choice for the rest."""
    prepare_builtin_dataset(config)
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        return CRSDataset(config)
    return create_recbole_dataset(config)


def build_model(config, train_data):
    # RecBole seeds with seed + local_rank; the global rank keeps the machines of a multi-machine run apart (DDP
    # gives every rank rank 0's initial weights either way).
    init_seed(config["seed"] + config["local_rank"] + (config["offset"] or 0), config["reproducibility"])
    model_class = get_model(config["model"])
    # RecBole models such as S3Rec load `pre_model_path` in their constructor with torch.load.
    with trusted_torch_load():
        model = model_class(config, train_data._dataset)
    return model.to(config["device"])


def train(config, dataset, train_data, valid_data, saved=True, verbose=True):
    """Train ``config['model']``; returns ``(trainer, best_valid_score, best_valid_result)``."""
    pipeline = PIPELINES.get(config["model"])
    if pipeline is not None:
        return pipeline(config, dataset, train_data, valid_data, saved=saved, verbose=verbose)
    model = build_model(config, train_data)
    getLogger().info(model)
    # The model's own type picks the trainer (Pop keeps TraditionalTrainer on the sequential protocol).
    trainer = get_trainer(type(model).type, config["model"])(config, model)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, verbose=verbose, saved=saved, show_progress=config["show_progress"] and verbose
    )
    return trainer, best_valid_score, best_valid_result


def evaluate_test(config, trainer, test_data, saved=True, show_progress=False):
    """``({mode: result}, {mode: result by turn})`` for every mode in ``crs_test_modes``.

    The best checkpoint is loaded once. Results by turn are empty for data without conversations.
    """
    modes = run_plan(config).test_modes
    results = trainer.evaluate_modes(test_data, modes, load_best_model=saved, show_progress=show_progress)
    by_turn = getattr(trainer, "results_by_turn", {})
    return results, {mode: by_turn[mode] for mode in modes if mode in by_turn}


def train_and_test(config, saved=True, verbose=True):
    """Dataset, training and test evaluation for a built ``config``; returns the HyperTuning result dict.

    ``test_result`` is the result in the ``crs_candidates`` mode; ``test_results`` holds every mode of
    ``crs_test_modes`` and ``test_results_by_turn`` their metrics at each turn (keys:
    :mod:`recbole_crs.evaluation.summary`).
    """
    result, _ = train_and_test_with_trainer(config, saved=saved, verbose=verbose)
    return result


def train_and_test_with_trainer(config, saved=True, verbose=True):
    """:func:`train_and_test`, also returning the trainer of the last stage (for its epoch count, its writers).

    Validates ``config`` first (:func:`recbole_crs.validation.validate`), whoever built it.
    """
    validate(config, saved=saved)  # before the dataset (and its cache) and any training
    return _train_and_test_validated(config, saved, verbose)


def _train_and_test_validated(config, saved, verbose):
    logger = getLogger()
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    trainer, best_valid_score, best_valid_result = train(
        config, dataset, train_data, valid_data, saved=saved, verbose=verbose
    )
    test_results, test_results_by_turn = evaluate_test(
        config, trainer, test_data, saved=saved, show_progress=config["show_progress"] and verbose
    )
    candidates = run_plan(config).candidates  # the mode validation used during training
    main_mode = candidates if candidates in test_results else next(iter(test_results))
    result = {
        "model": config["model"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_results[main_mode],
        "test_results": test_results,
        "test_results_by_turn": test_results_by_turn,
    }
    return result, trainer


def run(
    model=None,
    dataset=None,
    config_file_list=None,
    config_dict=None,
    saved=True,
    nproc=1,
    world_size=-1,
    ip="localhost",
    port="5678",
    group_offset=0,
    command_line=None,
):
    """RecBole's ``quick_start.run``: train and test in one process, or in ``nproc`` processes of a distributed run.

    With ``nproc == 1`` and ``world_size <= 0`` this is :func:`run_recbole_crs`. Otherwise the config is built and
    validated here first (a wrong value raises :class:`CRSConfigError` before any process starts), then ``nproc``
    processes are spawned, each running :func:`run_recbole_crses` with ``local_rank`` = its index and
    ``world_size, ip, port, nproc, offset`` in its ``config_dict``; their process group uses NCCL on GPUs and gloo
    on the CPU (:meth:`recbole_crs.config.Config._init_device`). Returns the result of this machine's first
    process (local rank 0, as RecBole): every rank computes the same metrics (gathered evaluation).

    :func:`recbole_crs.launcher.launch` starts and joins the processes: an input error in any of them is raised
    here as that one :class:`CRSInputError`, a process killed by a signal as a ``WorkerDiedError``; the processes
    end with this one, and the rendezvous with ``rendezvous_timeout``.

    Args:
        nproc: processes on this machine. world_size: processes of all machines together (-1: ``nproc``).
        ip, port: address of the machine of rank 0 (the same on every machine).
        group_offset: the global rank of this machine's first process (processes on the machines before it).
        command_line: the ``--key=value`` config arguments, for every process (None: RecBole's ``sys.argv[1:]``).
    """
    world_size = check_launch(nproc, world_size, ip, port, group_offset)
    if nproc == 1 and world_size <= 1:
        return run_recbole_crs(model=model, dataset=dataset, config_file_list=config_file_list,
                               config_dict=config_dict, saved=saved, command_line=command_line)
    config_dict = dict(config_dict or {})
    # Everything checkable is checked once, here, before any process (or the process group) starts.
    config = build_config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                          command_line=command_line)
    validate(config, saved=saved)
    errors = device_errors(config.final_config_dict, nproc, uses_cuda(config.final_config_dict))
    if errors:
        raise CRSConfigError(errors)
    prepare_builtin_dataset(config)  # once, not by every process at the same time
    config_dict.update({"world_size": world_size, "ip": ip, "port": port, "nproc": nproc, "offset": group_offset})
    kwargs = {"config_dict": config_dict, "saved": saved, "command_line": command_line}
    items = launch(run_recbole_crses, (model, dataset, config_file_list), kwargs, nproc, first_rank=group_offset)
    results = [value for kind, value in items if kind == "result"]
    return results[0] if results else None


def prepare_builtin_dataset(config):
    """Build ``config``'s dataset on first use if it is a built-in one (ml-100k-crs, ml-100k-crs-targets[-X])."""
    if is_builtin(config["dataset"]):
        ensure_builtin(config["dataset"], os.path.dirname(os.path.normpath(config["data_path"])))


def run_recbole_crses(rank, *args):
    """One process of :func:`run` (RecBole's ``run_recboles``): ``args`` = (model, dataset, config_file_list,
    kwargs) with kwargs holding ``config_dict``, ``saved``, ``command_line`` and what :func:`recbole_crs.launcher.launch` adds
    (``queue``, ``launcher_pid``); ``rank`` becomes ``local_rank``. The process ends with its launcher, and hands
    an input error to it (exit status 2)."""
    kwargs = dict(args[-1])
    end_with_launcher(kwargs.get("launcher_pid"))
    config_dict = dict(kwargs.get("config_dict") or {})
    config_dict["local_rank"] = rank
    queue = kwargs.get("queue")
    try:
        run_recbole_crs(*args[:3], config_dict=config_dict, saved=kwargs.get("saved", True), queue=queue,
                        command_line=kwargs.get("command_line"))
    except CRSInputError as error:
        report_input_error(queue, error)


def prepare_log_folders(model=None):
    """RecBole writes tensorboard events to ``./log_tensorboard/`` and (with ``model``) its log to
    ``./log/<model>/``, relative to the working folder: create them, or say in one line that the working folder
    does not take them."""
    folders = ["log_tensorboard"] + ([os.path.join("log", str(model))] if model is not None else [])
    for folder in folders:
        try:
            # exist_ok: RecBole's ensure_dir checks, then creates: processes started together race there.
            os.makedirs(folder, exist_ok=True)
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as error:
            raise OutputError(
                f"cannot write RecBole's log folder '{os.path.abspath(folder)}' ({error.strerror or error}): RecBole "
                "writes ./log and ./log_tensorboard in the working folder; run from a folder you can write to."
            ) from None


def run_recbole_crs(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, queue=None,
                    command_line=None):
    """Train and test a model (ours or RecBole's) with conversation-aware evaluation.

    The config is validated (:func:`recbole_crs.validation.validate`) before the logger creates ./log: a
    wrong config raises :class:`~recbole_crs.errors.CRSConfigError` and writes nothing.

    In a process of a distributed run (:func:`run`) rank 0 puts its result into ``queue``; the process group is
    closed at the end.
    """
    config = build_config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                          command_line=command_line)
    validate(config, saved=saved)
    init_seed(config["seed"], config["reproducibility"])
    prepare_log_folders(config["model"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)

    result, _ = _train_and_test_validated(config, saved, verbose=True)  # validated above, before the logger

    logger.info("The running environment of this training is as follows:\n" + get_environment(config).draw())
    logger.info(set_color("best valid ", "yellow") + f": {result['best_valid_result']}")
    logger.info(set_color("test result", "yellow") + ":\n" + format_results_table(result["test_results"]))
    if is_distributed(config):
        dist.destroy_process_group()
    if config["local_rank"] == 0 and queue is not None:
        queue.put(("result", result))
    return result


def objective_function(config_dict=None, config_file_list=None, saved=True):
    """RecBole ``HyperTuning`` objective: train and test quietly, return the keys HyperTuning reads."""
    config = build_config(config_dict=config_dict, config_file_list=config_file_list)
    init_seed(config["seed"], config["reproducibility"])
    prepare_log_folders()  # the trainers' tensorboard writers
    logging.basicConfig(level=logging.ERROR)
    return train_and_test(config, saved=saved, verbose=False)


def load_data_and_model(model_file):
    """Rebuild config, dataset, dataloaders and the trained model from a checkpoint of this plugin.

    The checkpoint is a pickle: only load files you trust (see ``recbole_crs.artifacts.checkpoints``). A checkpoint whose data
    files have changed since it was trained is refused (``recbole_crs.artifacts.check_data_fingerprint``).
    """
    checkpoint = load_checkpoint(model_file)
    config = Config.from_checkpoint(checkpoint)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    check_data_fingerprint(checkpoint, dataset, model_file)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = build_model(config, train_data)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
