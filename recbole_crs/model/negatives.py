"""Which negatives MIP pre-training draws, and the uniform sampler.

Zhou et al., CIKM 2020 pre-train in two stages: uniform negatives first, then negatives from a SASRec
generator (:mod:`recbole_crs.model.negative_generator`). Whether any pre-training epoch draws generator negatives
is the run plan's decision (:attr:`recbole_crs.run_plan.RunPlan.generator_needed`, read by the pipeline, the
validation and :class:`NegativeSchedule`); :class:`NegativeSchedule` says which sampler draws the negatives of
each epoch.

Deviation from the authors' code: uniform negatives never equal the true item and, with ``exclude``, never
an item of the row's MIP sequence (:func:`allowed_items`); the authors draw uniformly over all items.

A sampler has ``name`` and ``sample(item_seq, batch_index, position_index, true_items, n_negatives,
exclude=None) -> [M, n_negatives]`` item ids (:class:`UniformNegativeSampler`,
:class:`~recbole_crs.model.negative_generator.NegativeGenerator`).
"""

import torch

from recbole_crs.run_plan import run_plan

NEGATIVE_SAMPLERS = ("generator", "uniform")


def uniform_negatives(true_items, n_items, n_negatives):
    """Uniform negatives over the real items ``1 .. n_items - 1`` except the true one.

    Args:
        true_items: [M] item ids (>= 1).
    Returns:
        [M, n_negatives] ids, never equal to the row's true item.
    """
    if n_items < 3:
        raise ValueError("Sampling a negative needs at least two real items.")
    # draw from n_items - 2 values and skip over the true item: exactly uniform, no rejection loop.
    draws = torch.randint(1, n_items - 1, (len(true_items), n_negatives), device=true_items.device)
    return draws + (draws >= true_items.unsqueeze(1)).long()


def allowed_items(true_items, n_items, exclude=None):
    """[M, n_items] bool: the items a negative may be for each masked position.

    Never padding (0) nor the row's true item; with ``exclude`` ([M, X] item ids, 0 = padding) none of those
    either. A row whose every real item would be excluded keeps all items except padding and its true item
    (a fallback for tiny catalogues: a row needs some negative).
    """
    allowed = torch.ones(len(true_items), n_items, dtype=torch.bool, device=true_items.device)
    allowed[:, 0] = False
    allowed.scatter_(1, true_items.unsqueeze(1), False)
    if exclude is None:
        return allowed
    restricted = allowed.scatter(1, exclude, False)  # ids 0 (padding) were excluded already
    empty = ~restricted.any(dim=1, keepdim=True)
    return torch.where(empty, allowed, restricted)


def uniform_allowed_negatives(allowed, n_negatives):
    """[M, n_negatives] ids drawn uniformly (with replacement) from each row's allowed items ([M, n_items] bool).

    Exactly uniform: ``torch.multinomial`` over equal weights on the allowed items and zero elsewhere.
    """
    if not allowed.any(dim=1).all():
        raise ValueError("Sampling a negative needs at least two real items.")
    return torch.multinomial(allowed.float(), n_negatives, replacement=True)


class UniformNegativeSampler:
    """Uniform negatives (the ``negative_sampler: uniform`` ablation and the warm-up epochs)."""

    name = "uniform"

    def __init__(self, n_items):
        self.n_items = n_items

    def sample(self, item_seq, batch_index, position_index, true_items, n_negatives, exclude=None):
        """Uniform over the real items except the true one, and except ``exclude`` ([M, X], 0 = padding) if given."""
        if exclude is None:
            return uniform_negatives(true_items, self.n_items, n_negatives)
        return uniform_allowed_negatives(allowed_items(true_items, self.n_items, exclude), n_negatives)


class NegativeSchedule:
    """The samplers of pre-training and which one draws each epoch's negatives.

    Uniform during the ``uniform_warmup_epochs`` (and throughout with ``negative_sampler: uniform``), the
    generator after. ``uniform`` is the model's own sampler (``CRSPretrain.uniform_sampler``), so there is one.

    Args:
        config: the pre-training config.
        uniform: the :class:`UniformNegativeSampler`.
        generator: the generator; required when the run plan needs one (a ValueError says how to get one).
    """

    def __init__(self, config, uniform, generator=None):
        if config["negative_sampler"] not in NEGATIVE_SAMPLERS:
            raise ValueError(
                f"negative_sampler must be one of {NEGATIVE_SAMPLERS}, got {config['negative_sampler']!r}."
            )
        self.uses_generator = run_plan(config).generator_needed
        if self.uses_generator and generator is None:
            raise ValueError(
                "negative_sampler 'generator' needs a trained SASRec generator: set generator_path, or keep "
                "'generator' in crs_stages so the pipeline trains one (or use negative_sampler: uniform)."
            )
        self.uniform_warmup_epochs = config["uniform_warmup_epochs"] or 0
        self.uniform = uniform
        self.generator = generator

    def sampler_for_epoch(self, epoch_idx):
        """The generator from the first epoch after the warm-up when it is used, the uniform sampler otherwise."""
        if self.uses_generator and epoch_idx >= self.uniform_warmup_epochs:
            return self.generator
        return self.uniform
