"""The rule of each key: :data:`GENERAL_RULES` (RecBole keys every run reads), :data:`PLUGIN_MODEL_RULES` (the
plugin models' keys) and :data:`REMOVED_KEYS` (keys that were renamed, reported with what replaced them).

A key's type and range are stated here once, before training, so that ``validate`` reports a wrong value with
its fix before anything is written, and models and trainers built without ``validate`` (tests, notebooks) apply
the same rule through :func:`check_keys`. Add a rule here when a model gets a new key.
"""

from recbole.model.layers import FeedForward

from recbole_crs.data.compact import INTER_LOADINGS
from recbole_crs.data.windows import HISTORY_WINDOWS
from recbole_crs.errors import CRSConfigError
from recbole_crs.settings.rule import RemovedRule, Rule, boolean, integer, is_int, is_number, number, one_of, text

class _AnyAttribute:
    """Stands for a layer: every attribute the activation table reads (``self.gelu``, ...) exists."""

    def __getattr__(self, name):
        return None


def recbole_activations():
    """The ``hidden_act`` values RecBole accepts: the keys of the table in ``FeedForward.get_hidden_act``
    (recbole.model.layers), read from RecBole, not copied. The table is a dict literal inside the method, so its
    keys are string constants of the method's code; each is confirmed by a lookup through the method itself."""
    lookup = FeedForward.get_hidden_act
    constants = [c for const in lookup.__code__.co_consts
                 for c in (const if isinstance(const, tuple) else (const,)) if isinstance(c, str)]
    accepted = []
    for name in dict.fromkeys(constants):
        try:
            lookup(_AnyAttribute(), name)
        except KeyError:
            continue
        accepted.append(name)
    return tuple(accepted)


# Keys every run reads (RecBole's training loop and the plugin's evaluation): checked for every model.
GENERAL_RULES = {
    "epochs": integer(1, 20),
    "learning_rate": number(0, example=0.001),
    "train_batch_size": integer(1, 256),
    "eval_batch_size": integer(1, 4096),
    "stopping_step": integer(0, 3),
    "MAX_ITEM_LIST_LENGTH": integer(1, 20),
    "weight_decay": number(0, low_open=False, example=0.0),
    # RecBole's init_seed seeds NumPy, which takes 0 .. 2**32 - 1 (a negative seed was a traceback from NumPy).
    "seed": Rule(lambda v: is_int(v) and 0 <= v < 2 ** 32, "an integer in [0, 4294967295]", 2020),
    "use_gpu": boolean(),
    "show_progress": boolean(),
    "reproducibility": boolean(),
    "crs_sequential_protocol": boolean(none_ok=True),
    "ATTRIBUTE_FIELD": text(),
    "CONFIRMED_FIELD": text(example="confirmed_attributes"),
    "REJECTED_FIELD": text(none_ok=True, example="rejected_items"),
    "CANDIDATE_FIELD": text(none_ok=True, example="candidate_items"),
    "SPLIT_FIELD": text(none_ok=True, example="split"),
    "CONFIRMED_TURN_FIELD": text(none_ok=True, example="confirmed_turns"),
    "REJECTED_TURN_FIELD": text(none_ok=True, example="rejected_turns"),
    "crs_test_modes": Rule(lambda v: isinstance(v, (list, tuple)), "a list of candidate modes (or ~)",
                           "[all, first, confirmed]", none_ok=True),
    # how CRSDataset loads the .inter file and builds history windows
    "history_windows": one_of(HISTORY_WINDOWS, none_ok=True),
    "inter_loading": one_of(INTER_LOADINGS, none_ok=True),
    # the feed-forward activation of RecBole's transformer models (SASRec, BERT4Rec, S3Rec, ...) and of the
    # plugin's encoders: RecBole looks it up with a bare KeyError; a run without a transformer never has the key
    "hidden_act": one_of(recbole_activations()),
}

_PROBABILITY = dict(low=0, high=1, low_open=False, high_open=True, example=0.2)

# Keys of the plugin's models: checked when the model's own yaml (properties/model/<model>.yaml) has the key,
# so a RecBole model's key of the same name (its meaning may differ) is left to RecBole.
PLUGIN_MODEL_RULES = {
    # encoders
    "hidden_size": integer(1, 32),
    "inner_size": integer(1, 64),
    "n_layers": integer(1, 1),
    "attribute_n_layers": integer(1, 1),
    "n_heads": integer(1, 2),
    "hidden_dropout_prob": number(**_PROBABILITY),
    "attn_dropout_prob": number(**_PROBABILITY),
    "layer_norm_eps": number(0, example=1e-12),
    "initializer_range": number(0, example=0.02),
    "max_attribute_length": integer(1, 10),
    # pipeline
    "generator_path": text(none_ok=True, example="saved/SASRec-ml-100k-crs.pth"),
    "pretrained_path": text(none_ok=True, example="saved/CRSPretrain-ml-100k-crs.pth"),
    "torch_threads": integer(1, 1, none_ok=True, none_text="(or ~ to keep torch's setting)"),
    # negative generator
    "generator_temperature": number(0, example=2.0),
    "generator_epochs": integer(1, 200),
    "generator_learning_rate": number(0, example=0.002, none_ok=True),
    "generator_config": Rule(lambda v: isinstance(v, dict), "a mapping of SASRec keys (or ~)", "{n_layers: 1}",
                             none_ok=True),
    # pre-training
    "pretrain_epochs": integer(1, 50),
    "pretrain_learning_rate": number(0, example=0.002),
    "pretrain_stride": integer(1, 1, none_ok=True, none_text="(or ~ for MAX_ITEM_LIST_LENGTH + 1)"),
    "pretrain_batch_size": integer(1, 256, none_ok=True, none_text="(or ~ for train_batch_size)"),
    "uniform_warmup_epochs": integer(0, 0, none_ok=True),
    "negatives_exclude_positives": boolean(none_ok=True),
    "mask_ratio": number(0, 1, low_open=False, high_open=False, example=0.2),
    "n_negatives": integer(1, 16),
    "sad_substitute_rate": Rule(
        lambda v: is_number(v) and 0 < v < 1, "a number strictly between 0 and 1",
        fix="set it to the fraction of attribute slots SAD substitutes, e.g. sad_substitute_rate: 0.3 "
        "(sad_weight: 0 turns SAD off)",
    ),
    "substitute_k": RemovedRule(
        "was replaced by sad_substitute_rate: remove substitute_k and set sad_substitute_rate, the fraction of "
        "attribute slots SAD substitutes (e.g. 0.3)."
    ),
    "mip_weight": number(0, low_open=False, example=1.0),
    "sad_weight": number(0, low_open=False, example=0.1),
    # fine-tuning
    "loss_type": one_of(("CE", "BPR")),
    "bpr_negatives": integer(1, 1),
    "rejected_weight": number(0, low_open=False, example=0.0, none_ok=True),
    "attribute_filter": boolean(none_ok=True),
    "history_prior_weight": number(0, low_open=False, example=1.0, none_ok=True),
    "history_attributes": one_of(("empty", "subset", "initial", "matched"), none_ok=True),
    # AttrFM
    "embedding_size": integer(1, 64),
    "n_uniform_negatives": integer(0, 1),
    "n_hard_negatives": integer(0, 1),
    "use_rejected_negatives": boolean(),
    "attribute_loss_weight": number(0, low_open=False, example=1.0),
    "reg_weight": number(0, low_open=False, example=1e-4),
}

REMOVED_KEYS = ("substitute_k",)


def rule(key):
    """The rule of ``key`` (a key every run reads first, then a plugin model's key), None if it has none."""
    return GENERAL_RULES.get(key) or PLUGIN_MODEL_RULES.get(key)


def check_keys(config, keys):
    """Raise :class:`CRSConfigError` for the first of ``keys`` whose value in ``config`` breaks its rule.

    For models and trainers built without :func:`validate` (tests, notebooks): the same rules, one place.
    """
    for key in keys:
        message = rule(key).error(key, config[key])
        if message:
            raise CRSConfigError(message)
