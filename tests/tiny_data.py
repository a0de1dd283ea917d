"""A hand-built conversational dataset small enough to know every right answer.

Items and attributes::

    i1: a b      i2: a        i3: b c
    i4: c        i5: a c      i6: b

Each user's last interaction is the test row (leave-one-out), the one before it the validation row.
"""

import contextlib
import os
import sys

ITEM_ATTRIBUTES = {
    "i1": ["a", "b"],
    "i2": ["a"],
    "i3": ["b", "c"],
    "i4": ["c"],
    "i5": ["a", "c"],
    "i6": ["b"],
}

# user -> [(item, confirmed attributes, rejected items)], in time order.
USER_SEQUENCES = {
    "u1": [("i1", ["a"], []), ("i2", ["a"], ["i1"]), ("i3", ["c", "b"], []), ("i4", ["c"], ["i3"]), ("i5", ["a", "c"], ["i1"])],
    "u2": [("i2", ["a"], []), ("i3", ["b"], []), ("i1", ["b", "a"], ["i6"]), ("i6", ["b"], []), ("i5", ["c", "a"], [])],
    "u3": [("i4", ["c"], []), ("i5", ["a"], []), ("i3", ["b"], []), ("i1", ["a"], ["i2", "i5"]), ("i2", ["a"], ["i1", "i5"])],
    "u4": [("i6", ["b"], []), ("i3", ["c"], []), ("i5", ["c"], []), ("i2", ["a"], []), ("i3", ["b", "c"], ["i6"])],
}


def write_tiny_dataset(root, name="tiny-crs", item_attributes=None, user_sequences=None, item_header=None,
                       inter_header=None, with_rejected=True):
    """Write ``root/name/name.{inter,item}``; headers can be overridden to build malformed files."""
    item_attributes = ITEM_ATTRIBUTES if item_attributes is None else item_attributes
    user_sequences = USER_SEQUENCES if user_sequences is None else user_sequences
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    item_header = item_header or "item_id:token\tattributes:token_seq"
    with open(os.path.join(folder, f"{name}.item"), "w") as f:
        f.write(item_header + "\n")
        for item, attributes in item_attributes.items():
            f.write(f"{item}\t{' '.join(attributes)}\n")
    default_inter = "user_id:token\titem_id:token\ttimestamp:float\tconfirmed_attributes:token_seq"
    if with_rejected:
        default_inter += "\trejected_items:token_seq"
    with open(os.path.join(folder, f"{name}.inter"), "w") as f:
        f.write((inter_header or default_inter) + "\n")
        for user, rows in user_sequences.items():
            for t, (item, confirmed, rejected) in enumerate(rows):
                line = f"{user}\t{item}\t{t}\t{' '.join(confirmed)}"
                if with_rejected:
                    line += f"\t{' '.join(rejected)}"
                f.write(line + "\n")
    return folder


def tiny_config(root, **overrides):
    """A config_dict for fast runs on the tiny dataset written under ``root``."""
    config = {
        "data_path": str(root),
        "checkpoint_dir": os.path.join(str(root), "saved"),
        "epochs": 2,
        "train_batch_size": 8,
        "eval_batch_size": 8,
        "hidden_size": 8,
        "inner_size": 16,
        "n_layers": 1,
        "n_heads": 1,
        "MAX_ITEM_LIST_LENGTH": 5,
        "show_progress": False,
        "use_gpu": False,
        "state": "WARNING",
        "seed": 7,
        "topk": [1, 3],
        "valid_metric": "NDCG@3",
    }
    config.update(overrides)
    return config


@contextlib.contextmanager
def isolated_run_dir(root):
    """For a module-scoped fixture: the cwd in ``root`` (RecBole's ./log stays out of the repo), pytest's flags out
    of ``sys.argv`` (RecBole reads --key=value from it), and RecBole's tensorboard writer on an absolute path
    under ``root`` (a background thread flushes it, possibly after the cwd has moved back). Yields the patch."""
    import pytest
    import recbole.trainer.trainer as recbole_trainer
    from torch.utils.tensorboard import SummaryWriter

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setattr(sys, "argv", [sys.argv[0]])
        patch.setattr(recbole_trainer, "get_tensorboard", lambda logger: SummaryWriter(os.path.join(root, "log_tensorboard")))
        yield patch


def ml100k_config(root):
    """A small SASRec config on ml-100k-crs built under ``root``: the loader-equivalence tests' common ground."""
    return {"data_path": str(root), "checkpoint_dir": str(root / "saved"), "state": "WARNING",
            "show_progress": False, "use_gpu": False, "seed": 11, "MAX_ITEM_LIST_LENGTH": 20,
            "hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1, "epochs": 1,
            "train_batch_size": 2048, "eval_batch_size": 4096, "crs_test_modes": ["confirmed"]}


def unsaved_run_results(config, dataset, train_data, valid_data, test_data):
    """(best valid score, best valid result, test results by mode) of a run that writes nothing, on one torch
    thread (small ops on a shared machine: faster, and as deterministic)."""
    from recbole_crs.quick_start import evaluate_test, train
    from recbole_crs.runtime import torch_threads

    with torch_threads(1):
        trainer, score, valid_result = train(config, dataset, train_data, valid_data, saved=False, verbose=False)
        test_results, _ = evaluate_test(config, trainer, test_data, saved=False)
    return score, valid_result, test_results


def prepare_data(config):
    """(dataset, train, valid, test) of ``config``, seeded as quick_start seeds them."""
    from recbole.data import data_preparation
    from recbole.utils import init_seed

    from recbole_crs.quick_start import create_dataset

    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    return (dataset,) + tuple(data_preparation(config, dataset))


@contextlib.contextmanager
def tiny_run(root, config_of):
    """A module's tiny run: the dataset written under ``root``, :func:`isolated_run_dir`, ``config_of(root)`` and
    its data; yields ``SimpleNamespace(root, config, dataset, train, valid, test)``."""
    from types import SimpleNamespace

    write_tiny_dataset(str(root))
    with isolated_run_dir(str(root)):
        config = config_of(root)
        dataset, train, valid, test = prepare_data(config)
        yield SimpleNamespace(root=root, config=config, dataset=dataset, train=train, valid=valid, test=test)
