"""The values of a run's final config: each key against its rule (:mod:`recbole_crs.settings.key_rules`), and
the combinations no single rule sees: candidate modes, tie rule and metrics of the evaluation, ``valid_metric``
among the metrics computed, ``hidden_size`` a multiple of ``n_heads``, the generator overrides, the negative
sampler and its schedule, the fine-tuning rows, ``crs_stages`` with the checkpoints it needs.

A wrong value would otherwise surface after a stage has trained (an unknown metric at the first evaluation, a
missing checkpoint at fine-tuning); the modules that read these keys own their checks, which are called here
before training so that every problem is reported at once.
"""

from recbole.utils import ModelType

from recbole_crs.evaluation.candidates import check_mode
from recbole_crs.evaluation.ranking import check_tie_rule, metric_keys
from recbole_crs.model.generator_sasrec import check_generator_overrides
from recbole_crs.model.negatives import NEGATIVE_SAMPLERS
from recbole_crs.run_plan import check_stage_inputs, needs_history_prior, run_plan
from recbole_crs.settings.key_rules import GENERAL_RULES, PLUGIN_MODEL_RULES, REMOVED_KEYS
from recbole_crs.settings.rule import is_int, one_of
from recbole_crs.trainer.stages import GENERATOR_MODES, checked_learning_rate
from recbole_crs.validation.known_keys import plugin_model_keys


def value_error(config, key, value):
    """The one-line error for ``key: value`` in ``config``'s run (None if fine or if no rule applies)."""
    if key in GENERAL_RULES:
        return GENERAL_RULES[key].error(key, value)
    if key in PLUGIN_MODEL_RULES and (key in plugin_model_keys(config["model"]) or key in REMOVED_KEYS):
        return PLUGIN_MODEL_RULES[key].error(key, value)
    if key == "loss_type":
        allowed = _recbole_loss_types(config)
        if allowed and value not in allowed:
            return f"loss_type must be one of {', '.join(allowed)} for {config['model']}, got {value!r}: fix it, " \
                f"e.g. loss_type: {allowed[0]}"
    return None


def _recbole_loss_types(config):
    """RecBole's sequential models accept loss_type CE or BPR (their yaml says which one they default to)."""
    default = config.internal_config_dict.get("loss_type")
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL and default in ("CE", "BPR"):
        return ("CE", "BPR")
    return ()


def _catch(errors, check, *args):
    """``check(*args)``, its ValueError's lines added to ``errors`` (None returned then)."""
    try:
        return check(*args)
    except ValueError as error:  # the reused checks raise ValueError (CRSConfigError is one)
        errors.extend(getattr(error, "errors", None) or [" ".join(str(error).split("\n"))])
    except TypeError:  # a value of the wrong type, which its own rule reports
        pass
    return None


def value_errors(config):
    """One line per value of the final config that breaks its rule, then the evaluation and model checks."""
    errors = []
    final = config.final_config_dict
    for key, value in final.items():
        message = value_error(config, key, value)
        if message:
            errors.append(message)
    errors += _evaluation_errors(config)
    errors += _model_errors(config)
    return errors


def _evaluation_errors(config):
    """The run plan's candidate modes, tie rule, metrics and ``valid_metric`` among the metrics computed."""
    errors = []
    _catch(errors, lambda: run_plan(config).candidates)
    modes = config["crs_test_modes"]
    if isinstance(modes, (list, tuple)):
        for mode in modes:
            try:
                check_mode(mode)
            except ValueError as error:
                errors.append(f"crs_test_modes: {error}")
    _catch(errors, check_tie_rule, config["crs_ties"] or "expected")
    metrics, topk = config["metrics"], config["topk"]
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:  # conversation-aware evaluation computes the metrics
        _catch(errors, metric_keys, metrics, topk)
        errors += _full_ranking_errors(config)
    valid_metric = config["valid_metric"]
    if isinstance(valid_metric, str) and isinstance(metrics, (list, tuple)):
        ks = topk if isinstance(topk, (list, tuple)) else [topk]
        computed = {str(m).lower() for m in metrics} | {f"{str(m).lower()}@{k}" for m in metrics for k in ks}
        if valid_metric.lower() not in computed:
            choices = sorted(c for c in computed if "@" in c) or sorted(computed)
            errors.append(
                f"valid_metric {valid_metric!r} is not computed by metrics {list(metrics)} and topk {list(ks)}: "
                f"use one of {', '.join(choices)}, or add its metric/k."
            )
    return errors


def _full_ranking_errors(config):
    """Conversation-aware evaluation restricts RecBole's full ranking to each state's candidates: a sampled
    ``eval_args`` mode (``uni100``, ``pop100``, ``labeled``) would fail at the first evaluation, after an epoch."""
    modes = (config["eval_args"] or {}).get("mode")
    modes = modes if isinstance(modes, dict) else {"valid": modes, "test": modes}
    sampled = {phase: mode for phase, mode in modes.items() if mode != "full"}
    if not sampled:
        return []
    given = ", ".join(f"{phase}: {mode}" for phase, mode in sampled.items())
    return [
        f"eval_args mode must be full for conversation-aware evaluation, got {{{given}}}: every candidate mode "
        "(crs_candidates, crs_test_modes) ranks all items and keeps each conversation's candidates, which sampled "
        "candidates cannot give. Set eval_args: {mode: full}."
    ]


def _model_errors(config):
    """The combinations of the model's own keys, checked by the modules that read them."""
    errors = []
    model_keys = plugin_model_keys(config["model"])
    hidden, heads = config["hidden_size"], config["n_heads"]
    if {"hidden_size", "n_heads"} <= model_keys and is_int(hidden) and is_int(heads) and heads >= 1:
        if hidden % heads:
            errors.append(
                f"hidden_size ({hidden}) must be a multiple of n_heads ({heads}): change one, e.g. "
                f"hidden_size: {heads * max(1, round(hidden / heads))}."
            )
    if "generator_config" in model_keys and isinstance(config["generator_config"], dict):
        _catch(errors, check_generator_overrides, config["generator_config"])
    if "negative_sampler" in model_keys or "generator_mode" in model_keys:
        for key, options in (("negative_sampler", NEGATIVE_SAMPLERS), ("generator_mode", GENERATOR_MODES)):
            message = one_of(options).error(key, config[key])
            if message:
                errors.append(message)
        _catch(errors, checked_learning_rate, config["generator_phase_learning_rate"])
    plan = run_plan(config)
    if "finetune_rows" in model_keys:
        _catch(errors, lambda: (plan.finetune_rows, plan.finetune_samples))
    if "crs_stages" in model_keys:
        stages = _catch(errors, lambda: plan.listed_stages)
        if stages is not None:
            _catch(errors, check_stage_inputs, config, list(stages))
    elif "history_prior_weight" in model_keys and not config["generator_path"] \
            and _catch(errors, needs_history_prior, config):
        # CRSFinetune on its own: nothing trains the generator its history prior reads
        errors.append(
            f"history_prior_weight: {config['model']} adds a SASRec generator's scores as its history prior "
            f"(history_prior_weight {config['history_prior_weight']}), and no generator is given: set generator_path "
            "to a SASRec checkpoint (e.g. one written by --model SASRec), run --model CRSPretrain "
            "--crs_stages='[generator,finetune]' to train one first, or set history_prior_weight: 0 (the paper's "
            "fine-tuning model)."
        )
    return errors
