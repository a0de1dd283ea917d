"""The run plan: what a run does, decided once from its config and read by validation, the pipeline and the trainers.

* **stages**: the CRSPretrain pipeline's stages that run, ``crs_stages`` checked (:func:`check_stages`) less a
  generator stage that no pre-training epoch would use when the user left ``crs_stages`` at its default
  (:func:`generator_stage_unused`); listed explicitly, it runs;
* **generator needed**: whether some pre-training epoch draws generator negatives (:func:`needs_generator`), and
  whether fine-tuning reads the generator as its history prior (:func:`needs_history_prior`);
* **fine-tuning data**: which training rows fine-tuning keeps and how many samples each gives
  (:func:`finetune_options`: ``finetune_rows``, ``finetune_samples``; what they select is
  :mod:`recbole_crs.data.finetune`'s job);
* **candidate modes**: the one evaluation uses during training (``crs_candidates``) and the ones the test reports
  (``crs_test_modes``, by default that one), each a mode of :mod:`recbole_crs.evaluation.candidates`.

:func:`run_plan` gives a config's :class:`RunPlan`, computed the first time it is asked for and kept with the config
while the values it was computed from stay the same (a stage's copy of the config with other values gets its own).
Each part is decided when first read, so a run is only refused for the parts it uses: a SASRec run never reads
``crs_stages``. The functions are public for the validation, which reports every problem at once with them.
"""

from functools import cached_property

from recbole_crs.errors import CRSConfigError
from recbole_crs.evaluation.candidates import check_mode

STAGES = ("generator", "pretrain", "finetune")
FINETUNE_ROWS = ("all", "conversations")  # the first is the default: CRSFinetune.yaml's (a test checks)
FINETUNE_SAMPLES = ("per_turn", "conversation")
# The config values a plan is decided from.
PLAN_KEYS = ("crs_stages", "negative_sampler", "uniform_warmup_epochs", "pretrain_epochs", "finetune_rows",
             "finetune_samples", "crs_candidates", "crs_test_modes", "history_prior_weight")


class RunPlan:
    """What a run does (see the module docstring); build it with :func:`run_plan`."""

    def __init__(self, values, stages_given):
        self.values = values  # {key: value} of PLAN_KEYS
        self.stages_given = stages_given

    @cached_property
    def listed_stages(self):
        """``crs_stages``, checked (None: every stage)."""
        return tuple(check_stages(self.values["crs_stages"]))

    @cached_property
    def generator_needed(self):
        """Whether pre-training draws generator negatives."""
        return needs_generator(self.values)

    @cached_property
    def history_prior_needed(self):
        """Whether fine-tuning reads the generator as its history prior."""
        return needs_history_prior(self.values)

    @cached_property
    def stages(self):
        """The stages this run executes, in order."""
        unused = generator_stage_unused(self.values, self.listed_stages, self.stages_given, self.generator_needed,
                                        self.history_prior_needed)
        return tuple(stage for stage in self.listed_stages if not (stage == "generator" and unused))

    @property
    def generator_skipped(self):
        """Whether the generator stage is listed (by default) but skipped as unused."""
        return "generator" in self.listed_stages and "generator" not in self.stages

    @cached_property
    def finetune_rows(self):
        return finetune_options(self.values)[0]

    @cached_property
    def finetune_samples(self):
        return finetune_options(self.values)[1]

    @cached_property
    def candidates(self):
        """The candidate mode of evaluation during training (``crs_candidates``, default ``all``)."""
        return check_mode(self.values["crs_candidates"] or "all")

    @cached_property
    def test_modes(self):
        """The candidate modes the test reports: ``crs_test_modes``, or the training's mode."""
        return tuple(check_mode(mode) for mode in self.values["crs_test_modes"] or [self.candidates])

    def keys_asking_for(self, mode):
        """The keys that ask for candidate mode ``mode``: ``crs_candidates`` (by its value or its default) and
        ``crs_test_modes`` when it lists the mode itself (not when it only inherits ``crs_candidates``)."""
        asks = (("crs_candidates", self.candidates == mode),
                ("crs_test_modes", bool(self.values["crs_test_modes"]) and mode in self.test_modes))
        return [key for key, asked in asks if asked]


def _value(config, key):
    return config.get(key) if isinstance(config, dict) else config[key]


def run_plan(config):
    """The :class:`RunPlan` of ``config`` (a ``Config``, or a dict of its values)."""
    values = {key: _value(config, key) for key in PLAN_KEYS}
    given = stages_given(config)
    plan = getattr(config, "_run_plan", None)
    if plan is None or plan.values != values or plan.stages_given != given:
        plan = RunPlan(values, given)
        if not isinstance(config, dict):
            config._run_plan = plan
    return plan


def check_stages(stages):
    """``crs_stages`` as a list: a non-empty list of known stages, each once, in pipeline order (None: all)."""
    if stages is None:
        return list(STAGES)
    order = ", ".join(STAGES)
    if not isinstance(stages, (list, tuple)):
        example = f"[{stages}]" if isinstance(stages, str) else f"[{order}]"
        raise CRSConfigError(
            f"crs_stages must be a list of stages, got {stages!r}: write it as a list, e.g. crs_stages: {example}."
        )
    stages = list(stages)
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown:
        raise CRSConfigError(
            f"crs_stages {stages} has unknown stages {unknown}: use a non-empty subset of [{order}], in that order."
        )
    if not stages:
        raise CRSConfigError(
            f"crs_stages is empty, so there is nothing to run: list the stages, e.g. crs_stages: [{order}]."
        )
    ordered = [stage for stage in STAGES if stage in stages]
    if stages != ordered:
        raise CRSConfigError(
            f"crs_stages {stages} must list each stage once, in pipeline order: write "
            f"crs_stages: [{', '.join(ordered)}] (stages always run {' -> '.join(STAGES)})."
        )
    return ordered


def needs_generator(config):
    """True when some pre-training epoch draws generator negatives: ``negative_sampler: generator`` and fewer
    ``uniform_warmup_epochs`` than ``pretrain_epochs`` (Zhou et al.'s two-stage schedule: uniform negatives first,
    then a SASRec generator's)."""
    warmup = config["uniform_warmup_epochs"] or 0
    return config["negative_sampler"] == "generator" and warmup < config["pretrain_epochs"]


def needs_history_prior(config):
    """True when fine-tuning adds the generator's next-item log-probabilities to its scores
    (``history_prior_weight`` > 0, :class:`~recbole_crs.model.crsfinetune.CRSFinetune`)."""
    return (config["history_prior_weight"] or 0) > 0


def stages_given(config):
    """Whether the user set ``crs_stages`` (a config file, ``config_dict`` or the command line) rather than leaving
    the yaml default; a config that does not say where its values came from counts as set."""
    given = getattr(config, "external_config_dict", None)
    return given is None or "crs_stages" in given


def generator_stage_unused(config, stages, given=None, generator_needed=None, history_prior_needed=None):
    """True when ``stages`` trains (or loads) a generator that no pre-training epoch samples from
    (:func:`needs_generator`) and fine-tuning does not read (:func:`needs_history_prior`), and the user did not list
    the stages: the pipeline then skips the generator stage."""
    given = stages_given(config) if given is None else given
    needed = needs_generator(config) if generator_needed is None else generator_needed
    prior = needs_history_prior(config) if history_prior_needed is None else history_prior_needed
    return "generator" in stages and not ("pretrain" in stages and needed) and not ("finetune" in stages and prior) \
        and not given


def check_stage_inputs(config, stages):
    """What the stages of ``stages`` read must be there, and nothing given may go unused.

    * ``pretrained_path`` with a ``pretrain`` stage: which one should fine-tuning start from? Neither wins.
    * ``pretrained_path`` without a ``finetune`` stage: it would be ignored.
    * ``pretrain`` with generator negatives needs the ``generator`` stage or ``generator_path``, and so does
      ``finetune`` with a history prior.
    """
    if config["pretrained_path"] and "pretrain" in stages:
        raise CRSConfigError(
            f"pretrained_path ({config['pretrained_path']!r}) is set and crs_stages runs 'pretrain': fine-tuning "
            "would have two pre-trained models, and neither wins. Remove pretrained_path to pre-train here, or "
            "remove 'pretrain' from crs_stages to fine-tune from pretrained_path."
        )
    if config["pretrained_path"] and "finetune" not in stages:
        raise CRSConfigError(
            f"pretrained_path ({config['pretrained_path']!r}) is only read by the 'finetune' stage, which crs_stages "
            f"{stages} does not run: add 'finetune' to crs_stages or remove pretrained_path."
        )
    if "pretrain" in stages and "generator" not in stages and not config["generator_path"] and needs_generator(config):
        raise CRSConfigError(
            "Pre-training with negative_sampler 'generator' needs a generator: add 'generator' to "
            "crs_stages, set generator_path to a SASRec checkpoint, or use negative_sampler: uniform."
        )
    if "finetune" in stages and "generator" not in stages and not config["generator_path"] \
            and needs_history_prior(config):
        raise CRSConfigError(
            f"Fine-tuning with history_prior_weight {config['history_prior_weight']} reads the SASRec generator as its "
            "history prior: add 'generator' to crs_stages, set generator_path to a SASRec checkpoint, or set "
            "history_prior_weight: 0."
        )


def finetune_options(config):
    """``(finetune_rows, finetune_samples)`` of ``config``, defaults filled in, unknown values refused."""
    rows = config["finetune_rows"] or FINETUNE_ROWS[0]
    samples = config["finetune_samples"] or FINETUNE_SAMPLES[0]
    if rows not in FINETUNE_ROWS:
        raise ValueError(f"finetune_rows must be one of {list(FINETUNE_ROWS)}, got {rows!r}.")
    if samples not in FINETUNE_SAMPLES:
        raise ValueError(f"finetune_samples must be one of {list(FINETUNE_SAMPLES)}, got {samples!r}.")
    return rows, samples
