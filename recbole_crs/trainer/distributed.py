"""Multi-process (``torch.distributed``) pieces every trainer shares.

RecBole 1.2.1's distributed mode (``quick_start.run(nproc=N)``, :meth:`recbole_crs.config.Config._init_device`)
starts one process per rank; a config with ``single_spec: False`` tells the trainers and dataloaders that they run
under it. What this module adds to RecBole's own support (the two changes to RecBole's trainers themselves, CPU DDP
and one tensorboard writer, are patches: :mod:`recbole_crs.patches`):

* **Gradient sync for custom loops.** :func:`average_gradients` all-reduces (averages) the gradients of a set of
  parameters in one collective: what DDP does for RecBole's ``_train_epoch``, for loops that call
  ``loss.backward()`` themselves (pre-training, the generator of joint mode).
* **One name, one file.** :func:`shared_value` lets rank 0 pick a value (a checkpoint name) and gives it to every
  rank; :func:`wait_for_file` is the barrier after rank 0 saved a checkpoint, and checks every rank sees it.
* **Per-row evaluation results.** :func:`gather_rows` collects every rank's per-row results and puts each row of
  the evaluation set back once, in order (the distributed sampler's padded duplicates dropped), so metrics are
  computed once over exactly the rows one process would score.
* **Per-rank randomness.** :func:`seed_rank` seeds each rank's random generators differently (negative sampling,
  masking, dropout), after the model was built identically on every rank.
"""

import os

import torch
import torch.distributed as dist
from recbole.utils import init_seed
from torch.utils.data.distributed import DistributedSampler

from recbole_crs.settings.launch import LAUNCHED_KEYS


def is_distributed(config):
    """Whether ``config`` belongs to a multi-process run (RecBole's ``single_spec: False``) with a live group."""
    try:
        single = config["single_spec"]
    except (KeyError, TypeError):
        return False
    return single is False and dist.is_available() and dist.is_initialized()


def rank():
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process(config=None):
    """Rank 0 of a multi-process run, or the one process of a single-process run."""
    if config is not None and not is_distributed(config):
        return True
    return rank() == 0


def _collective_device():
    """Where this process's collectives run: gloo works on CPU tensors, NCCL on the rank's GPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ------------------------------------------------------------------------------------------- gradients
def average_gradients(parameters):
    """Average the gradients of ``parameters`` over all ranks, in one all-reduce; no-op without a group.

    A parameter without a gradient on this rank counts as a zero gradient; one without a gradient on every rank
    keeps ``grad = None`` (so an optimizer skips it there too, as it would in one process).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    reference = params[0]
    grads = [p.grad.detach() if p.grad is not None else torch.zeros_like(p) for p in params]
    flags = torch.tensor([p.grad is not None for p in params], dtype=reference.dtype, device=reference.device)
    flat = torch.cat([g.reshape(-1).to(reference.dtype) for g in grads] + [flags])
    dist.all_reduce(flat)
    flat[: flat.numel() - len(params)] /= dist.get_world_size()
    offset = 0
    had = flat[flat.numel() - len(params):]
    for i, p in enumerate(params):
        n = p.numel()
        if had[i] > 0:
            averaged = flat[offset: offset + n].view_as(p).to(p.dtype)
            if p.grad is None:
                p.grad = averaged.clone()
            else:
                p.grad.copy_(averaged)
        offset += n


def reduce_epoch_stats(losses, counts=None):
    """An epoch's summed losses averaged over the ranks (a figure comparable to one process's), and ``counts``
    (a tensor or None on every rank alike) summed; one all-reduce."""
    size = dist.get_world_size()
    values = torch.tensor([float(x) for x in losses], dtype=torch.float64)
    if counts is not None:
        values = torch.cat([values, counts.detach().cpu().double().reshape(-1)])
    values = values.to(_collective_device())
    dist.all_reduce(values)
    values = values.cpu()
    reduced = (values[: len(losses)] / size).tolist()
    if counts is None:
        return reduced, None
    return reduced, values[len(losses):].to(counts.dtype).reshape(counts.shape).to(counts.device)


def broadcast_parameters(module, src=0):
    """Copy rank ``src``'s parameters and buffers into every rank's ``module`` (no-op without a group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=src)


# ------------------------------------------------------------------------------------------- names, files
def shared_value(config, make):
    """``make()`` on rank 0, given to every rank (broadcast); ``make()`` itself without a process group."""
    if not is_distributed(config):
        return make()
    holder = [make() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def wait_for_file(config, path):
    """Barrier after rank 0 wrote ``path``: every rank waits here, then checks it can read the file.

    A file that rank 0 has but another rank cannot see means ``checkpoint_dir`` is not shared between the
    machines of a multi-machine run: a one-line error says so, instead of a confusing load failure later.
    """
    if not is_distributed(config):
        return
    exists_on_rank0 = shared_value(config, lambda: bool(path) and os.path.isfile(path))
    if exists_on_rank0 and not os.path.isfile(path):
        raise RuntimeError(
            f"rank {dist.get_rank()} cannot see the checkpoint '{path}' that rank 0 saved: in a multi-machine run, "
            "checkpoint_dir must be a folder every machine shares (e.g. a network file system)."
        )


# ------------------------------------------------------------------------------------------- evaluation rows
def sampler_rows(eval_data):
    """The dataset rows this rank's evaluation dataloader yields, in order (None when not distributed).

    RecBole's dataloaders use a ``DistributedSampler`` (no shuffling for evaluation) under DDP; its index list
    (padded with repeated rows so every rank has as many) is the order in which the batches arrive.
    """
    sampler = getattr(eval_data, "sampler", None)
    if not isinstance(sampler, DistributedSampler):
        return None
    return torch.as_tensor(list(iter(sampler)), dtype=torch.long)


def gather_rows(columns, rows, n_rows):
    """All ranks' per-row results, each dataset row once, in dataset order.

    Args:
        columns: [R, C] long tensor, this rank's results per row (in the order of ``rows``).
        rows: [R] long tensor, the dataset row of each (:func:`sampler_rows`); every rank has the same R.
        n_rows: the number of rows in the dataset.

    Returns:
        [n_rows, C] long tensor (on the CPU).

    ``DistributedSampler`` deals the (padded) index list out round-robin: item ``j`` of rank ``r`` is entry
    ``j * world_size + r``, and the entries from ``n_rows`` on are the padding (repeats of the first rows). Those
    are dropped by position, so each row keeps the result of the rank that owns it.
    """
    local = torch.cat([rows.view(-1, 1).long(), columns.long()], dim=1).to(_collective_device())
    size = dist.get_world_size()
    gathered = [torch.empty_like(local) for _ in range(size)]
    dist.all_gather(gathered, local)
    kept = []
    for owner, part in enumerate(gathered):
        positions = torch.arange(len(part)) * size + owner
        kept.append(part.cpu()[positions < n_rows])
    everything = torch.cat(kept)
    index = everything[:, 0]
    if len(index) != n_rows or not torch.equal(torch.sort(index).values, torch.arange(n_rows)):
        raise RuntimeError(
            f"distributed evaluation gathered {len(index)} rows for a dataset of {n_rows}: every rank must evaluate "
            "the same dataloader"
        )
    out = torch.empty(n_rows, columns.shape[1], dtype=torch.long)
    out[index] = everything[:, 1:]
    return out


# ------------------------------------------------------------------------------------------- checkpoints
def single_process_values(config):
    """``config``'s final values as a single-process run's: what a checkpoint stores, so that the model it holds
    reloads in one process (``load_data_and_model``) with no process group to join. Rank-0 logging settings
    (``state``, ``show_progress``) are those of the run itself on rank 0."""
    values = dict(getattr(config, "final_config_dict", config))
    if values.get("single_spec", True) is not False:
        return values
    for key in LAUNCHED_KEYS:
        values.pop(key, None)
    values["single_spec"], values["local_rank"] = True, 0
    device = values.get("device")
    if isinstance(device, torch.device) and device.type == "cuda":
        values["device"] = torch.device("cuda")
    return values


# ------------------------------------------------------------------------------------------- randomness
def seed_rank(config, offset=0):
    """Seed this process's generators with ``seed + global rank`` (+ ``offset``): every rank draws its own
    negatives, masks and dropout. Call it after the models are built (their initialisation stays identical)."""
    init_seed(config["seed"] + rank() + offset, config["reproducibility"])
