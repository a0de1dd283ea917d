"""A conversation run from Python: train a model through ``quick_start`` (or load a checkpoint), then play the
episodes of a split with a policy and write the results (top floor of the package).

    from recbole_crs.conversation.runner import run_conversation
    result = run_conversation(model="AttrFM", dataset="scpr-lastfm-star", policy="MaxEntropy", episodes=4000)
    result["SR@15"], result["AT"], result["hDCG"]

Every option is checked before anything is trained, loaded or written (:func:`check_options`, the config by
``recbole_crs.validation.validate``, the dataset's attribute field, the checkpoint's dataset).
"""

import os
import sys
import time
from logging import getLogger

from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed
from tqdm import tqdm

from recbole_crs import quick_start
from recbole_crs.artifacts import load_checkpoint
from recbole_crs.config import Config
from recbole_crs.conversation.catalogue import ItemAttributes
from recbole_crs.conversation.episodes import dataset_pairs, select_episodes
from recbole_crs.conversation.histories import check_training_rows_first, training_histories
from recbole_crs.conversation.loop import play
from recbole_crs.conversation.metrics import summarize
from recbole_crs.conversation.options import check_options, conversation_defaults, score_guided_parameters
from recbole_crs.conversation.policies import make_policy
from recbole_crs.conversation.rankers import ModelRanker
from recbole_crs.conversation.report import episodes_tsv, format_table, write_outputs
from recbole_crs.errors import CheckpointMismatchError, CRSInputError
from recbole_crs.runtime import torch_threads
from recbole_crs.validation import validate

# A checkpoint of the CRSPretrain pipeline holds its last stage, CRSFinetune.
CHECKPOINT_MODELS = {"CRSPretrain": "CRSFinetune"}


class Setup:
    """A trained model and what every episode of its dataset needs: the config, dataset and its splits, the
    item-attribute table, the training histories and the ranker."""

    def __init__(self, config, model, dataset, splits, checkpoint, training_seconds):
        self.config, self.model, self.dataset = config, model, dataset
        self.splits = dict(zip(("train", "valid", "test"), splits))
        self.checkpoint, self.training_seconds = checkpoint, training_seconds
        check_training_rows_first(dataset)
        self.catalogue = ItemAttributes.from_dataset(dataset)
        self.histories = training_histories(self.splits["train"]._dataset, dataset.user_num, dataset.max_item_list_len)
        self.ranker = ModelRanker(model, dataset, self.histories)

    def pairs(self, split, episodes):
        return select_episodes(dataset_pairs(self.splits[split]._dataset), episodes)


def attribute_field_problem(config):
    """None, or why ``config``'s dataset has no attribute field to converse about (read from the .item header)."""
    field = config["ATTRIBUTE_FIELD"]
    path = os.path.join(config["data_path"], f"{config['dataset']}.item")
    try:
        with open(path, encoding="utf-8") as handle:
            header = handle.readline().rstrip("\n").split(config["field_separator"] or "\t")
    except OSError:
        return (f"dataset '{config['dataset']}' has no readable item file '{path}': a conversation needs items with "
                f"an attribute field ({field}:token_seq). Convert the data first (docs/converters.md).")
    if f"{field}:token_seq" not in header:
        return (f"dataset '{config['dataset']}' has no attribute field '{field}:token_seq' in '{path}' (columns: "
                f"{', '.join(header)}): a conversation asks about item attributes. Use a dataset with one, or set "
                "--ATTRIBUTE_FIELD=<its name>.")
    return None


def _check_attribute_field(config):
    problem = attribute_field_problem(config)
    if problem:
        raise CRSInputError(problem)


def _load(checkpoint, model, dataset):
    """``Setup`` of a checkpoint; refuses one trained on another dataset (or by another model) before loading it."""
    try:
        saved = load_checkpoint(checkpoint)
    except (OSError, ValueError) as error:
        raise CRSInputError(f"--checkpoint: {error}") from None
    saved_config = Config.from_checkpoint(saved)
    if dataset and saved_config["dataset"] != dataset:
        raise CRSInputError(
            f"--checkpoint '{checkpoint}' was trained on dataset '{saved_config['dataset']}', not '{dataset}': its "
            f"ids mean other items. Use --dataset {saved_config['dataset']} or a checkpoint trained on '{dataset}'."
        )
    if model and CHECKPOINT_MODELS.get(model, model) != saved_config["model"]:
        raise CRSInputError(
            f"--checkpoint '{checkpoint}' holds a {saved_config['model']} model, not {model}: drop --model or "
            "give the matching checkpoint."
        )
    _check_attribute_field(saved_config)
    try:
        config, loaded, data, *splits = quick_start.load_data_and_model(checkpoint)
    except CheckpointMismatchError as error:
        raise CRSInputError(str(error)) from None
    return Setup(config, loaded, data, splits, checkpoint, None)


def _train(model, dataset, config_file_list, config_dict, command_line):
    config = quick_start.build_config(model=model, dataset=dataset, config_file_list=config_file_list,
                                      config_dict=config_dict, command_line=command_line)
    validate(config, saved=True)
    quick_start.prepare_builtin_dataset(config)
    _check_attribute_field(config)
    init_seed(config["seed"], config["reproducibility"])
    os.makedirs(os.path.join("log", str(config["model"])), exist_ok=True)
    init_logger(config)
    data = quick_start.create_dataset(config)
    splits = data_preparation(config, data)
    started = time.perf_counter()
    trainer, _, _ = quick_start.train(config, data, splits[0], splits[1], saved=True, verbose=True)
    training_seconds = time.perf_counter() - started
    best = load_checkpoint(trainer.saved_model_file)  # the best validation epoch, not the last one
    trainer.model.load_state_dict(best["state_dict"])
    trainer.model.load_other_parameter(best.get("other_parameter"))
    return Setup(config, trainer.model, data, splits, trainer.saved_model_file, training_seconds)


def prepare(model=None, dataset=None, checkpoint=None, config_file_list=None, config_dict=None, threads=1,
            command_line=None):
    """Train ``model`` on ``dataset`` through ``quick_start`` (best validation epoch) or load ``checkpoint``.
    ``command_line``: ``--key=value`` config arguments (None: RecBole's ``sys.argv[1:]``)."""
    with torch_threads(threads):
        if checkpoint:
            return _load(checkpoint, model, dataset)
        return _train(model or "CRSPretrain", dataset, config_file_list, config_dict, command_line)


def resolve_options(**options):
    """conversation.yaml's defaults under ``options`` (None = default), checked."""
    defaults = conversation_defaults()
    merged = {key: defaults.get(key) for key in ("policy", "split", "episodes", "max_turns", "topk", "seed",
                                                  "batch_size", "threads")}
    merged.update({key: value for key, value in options.items() if value is not None})
    return check_options(merged), defaults


def build_policy(setup, options, defaults, overrides=None):
    """The policy of ``options`` (ScoreGuided with its parameters for this dataset and ranker)."""
    parameters = {}
    if options["policy"] == "ScoreGuided":
        parameters = score_guided_parameters(defaults, setup.config["dataset"], setup.ranker.name, options["topk"],
                                             overrides)
    return make_policy(options["policy"], setup.catalogue, options["topk"], **parameters)


def play_episodes(setup, policy, options, show_progress=True):
    """Play the episodes of ``options``; returns (:class:`~recbole_crs.conversation.loop.Outcomes`, seconds):
    seconds = ``{"wall": ..., "cpu": ...}`` (cpu: this process's CPU time, telling on a shared machine)."""
    pairs = setup.pairs(options["split"], options["episodes"])
    bar = None
    if show_progress:
        bar = tqdm(total=len(pairs), desc=f"{policy.name} episodes", unit="ep", ncols=100, file=sys.stderr)
    started, cpu_started = time.perf_counter(), time.process_time()
    with torch_threads(options["threads"]):
        outcomes = play(pairs, setup.ranker, policy, setup.catalogue, options["seed"], options["max_turns"],
                        options["topk"], options["batch_size"], progress=bar.update if bar else None)
    seconds = {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu_started}
    if bar is not None:
        bar.close()
    return outcomes, seconds


def result_of(setup, policy, options, outcomes, seconds):
    """The ``conversation.json`` dict of one run."""
    result = {
        "dataset": setup.config["dataset"], "split": options["split"], "model": setup.ranker.name,
        "run_model": setup.config["model"], "policy": policy.name, "policy_parameters": policy.parameters(),
        "episodes": len(outcomes), "max_turns": options["max_turns"], "topk": options["topk"],
        "seed": options["seed"],
    }
    result.update(summarize(outcomes.success_action, outcomes.success_rank, options["max_turns"]))
    result.update({
        "questions_per_episode": float(outcomes.asked.mean()) if len(outcomes) else 0.0,
        "seconds": round(seconds["wall"], 3), "cpu_seconds": round(seconds["cpu"], 3),
        "episodes_per_second": round(len(outcomes) / max(seconds["wall"], 1e-9), 1),
        "threads": options["threads"], "batch_size": options["batch_size"], "checkpoint": setup.checkpoint,
        "training_seconds": None if setup.training_seconds is None else round(setup.training_seconds, 1),
    })
    return result


def default_out(result):
    return os.path.join("saved", "conversation", f"{result['dataset']}-{result['model']}-{result['policy']}-"
                        f"{result['split']}-seed{result['seed']}")


def write_run(setup, result, outcomes, out=None):
    """Write the run's files into ``out`` (default ``saved/conversation/<dataset>-<model>-<policy>-<split>-seed<seed>``)."""
    data = setup.dataset
    tokens = [data.field2id_token[field] for field in (data.uid_field, data.iid_field, data.attribute_field)]
    out = out or default_out(result)
    result["out"] = out
    return write_outputs(out, result, episodes_tsv(outcomes, *tokens))


def run_conversation(model=None, dataset=None, checkpoint=None, out=None, config_file_list=None, config_dict=None,
                     policy_parameters=None, show_progress=True, setup=None, **options):
    """Train or load, play the episodes, write ``out/conversation.json`` (+ plot, episodes.tsv), print the
    table; returns the result dict. ``options``: policy, split, episodes, max_turns, topk, seed, batch_size,
    threads (None = conversation.yaml's default). ``setup``: a prepared :class:`Setup` to reuse."""
    options, defaults = resolve_options(**options)
    setup = setup or prepare(model, dataset, checkpoint, config_file_list, config_dict, options["threads"])
    policy = build_policy(setup, options, defaults, policy_parameters)
    outcomes, seconds = play_episodes(setup, policy, options, show_progress)
    result = result_of(setup, policy, options, outcomes, seconds)
    write_run(setup, result, outcomes, out)
    print(format_table([result]))
    getLogger().info("conversation results: %s", result)
    return result
