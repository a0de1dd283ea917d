"""The multi-process options: those of the launcher (``run_recbole_crs.py --nproc``, ``quick_start.run``:
``nproc``, ``world_size``, ``ip``, ``port``, ``group_offset``), the keys it hands each process
(``rendezvous_timeout`` included), an address that resolves, and a device per process: one GPU of ``gpu_id`` on
CUDA, one CPU core otherwise.

A wrong world size or a missing key would otherwise hang every process in ``torch.distributed``'s rendezvous or
fail on one rank after the others have started; these checks run in the parent, before any process is spawned,
and again in each process before RecBole starts ``torch.distributed``. What only the rendezvous can find (a
machine that never comes) ends after ``rendezvous_timeout`` (:func:`recbole_crs.launcher.join_process_group`).
"""

import os
import socket

from recbole_crs.errors import CRSConfigError
from recbole_crs.settings.rule import Rule, is_int, number

# The config keys the launcher sets in every process it starts (RecBole's names: group_offset -> offset).
LAUNCHED_KEYS = ("nproc", "world_size", "ip", "port", "offset")


def _port_ok(value):
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return is_int(value) and 1 <= value <= 65535


_DISTRIBUTED_RULES = {
    "nproc": Rule(lambda v: is_int(v) and v >= 1, "an integer >= 1", fix="fix it, e.g. --nproc=2"),
    "world_size": Rule(lambda v: is_int(v) and (v == -1 or v >= 1), "an integer >= 1 (or -1 for nproc)",
                       fix="set it to the number of processes of all machines together, e.g. --world_size=4"),
    "ip": Rule(lambda v: isinstance(v, str) and v.strip() != "", "a host name or address",
               fix="give the address of the machine of rank 0, e.g. --ip=192.168.1.10"),
    "port": Rule(_port_ok, "a port number in [1, 65535]", fix="give a free port, e.g. --port=5678"),
    "group_offset": Rule(lambda v: is_int(v) and v >= 0, "an integer >= 0",
                         fix="set it to the number of processes on the machines before this one, e.g. "
                         "--group_offset=2"),
    "offset": Rule(lambda v: is_int(v) and v >= 0, "an integer >= 0", fix="fix it, e.g. --group_offset=2"),
    "local_rank": Rule(lambda v: is_int(v) and v >= 0, "an integer >= 0",
                       fix="leave local_rank to the launcher (run_recbole_crs.py --nproc=N)"),
    "rendezvous_timeout": number(low=0, none_ok=True, fix="give the seconds each process waits for the others to "
                                 "join, e.g. --rendezvous_timeout=120"),
}


def check_launch(nproc=1, world_size=-1, ip="localhost", port="5678", group_offset=0):
    """The launcher's options (``run_recbole_crs.py --nproc ...``, ``quick_start.run``); returns the world size
    (``-1``: ``nproc``). Raises :class:`CRSConfigError`, one line per problem."""
    values = {"nproc": nproc, "world_size": world_size, "ip": ip, "port": port, "group_offset": group_offset}
    errors = [message for key, value in values.items() for message in [_DISTRIBUTED_RULES[key].error(key, value)]
              if message]
    if errors:
        raise CRSConfigError(errors)
    if world_size == -1:
        if group_offset:
            raise CRSConfigError(
                f"group_offset={group_offset} places this machine's processes after others, so world_size must be "
                "the number of processes of all machines together: set --world_size (e.g. "
                f"--world_size={group_offset + nproc})."
            )
        world_size = nproc
    if group_offset + nproc > world_size:
        raise CRSConfigError(
            f"world_size={world_size} is smaller than group_offset + nproc = {group_offset} + {nproc}: world_size "
            "counts the processes of all machines together; raise --world_size or lower --nproc/--group_offset."
        )
    if world_size > 1:
        _check_address(ip, port)
    return world_size


def _check_address(ip, port):
    """Every process connects to ``ip:port``: a name that does not resolve would make them retry forever."""
    try:
        socket.getaddrinfo(ip.strip(), int(port), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise CRSConfigError(
            f"ip {ip!r} does not resolve to an address ({reason}): give the address of the machine of rank 0, "
            "e.g. --ip=192.168.1.10 (--ip=localhost on one machine)."
        ) from None


def check_distributed(config_dict):
    """The multi-process keys of one process's config (``Config._init_device`` calls it before RecBole would
    start ``torch.distributed``).

    Without ``local_rank`` (a plain single-process run) ``nproc`` / ``world_size`` above 1 are refused: only the
    launcher starts processes, and a single-process entry point must not silently run one. With ``local_rank``
    (a process the launcher started, or one started by hand the RecBole way) every launched key must be there
    and consistent.
    """
    errors = [message for key in _DISTRIBUTED_RULES if key in config_dict
              for message in [_DISTRIBUTED_RULES[key].error(key, config_dict[key])] if message]
    if errors:
        raise CRSConfigError(errors)
    if "local_rank" not in config_dict:
        for key in ("nproc", "world_size"):
            value = config_dict.get(key)
            if value is not None and value > 1:
                raise CRSConfigError(
                    f"{key}={value!r} asks for several processes, which only the launcher starts: run "
                    f"`python run_recbole_crs.py --{key}={value} ...` or recbole_crs.quick_start.run(..., {key}={value}) "
                    f"and remove {key} from the config."
                )
        return
    missing = [key for key in LAUNCHED_KEYS if config_dict.get(key) is None]
    if missing:
        raise CRSConfigError(
            f"local_rank is set (one process of a multi-process run) but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not: start the run with `python run_recbole_crs.py --nproc=N` "
            "or recbole_crs.quick_start.run(..., nproc=N), which sets them all."
        )
    nproc, world, offset, local_rank = (config_dict[key] for key in ("nproc", "world_size", "offset", "local_rank"))
    if local_rank >= nproc:
        raise CRSConfigError(f"local_rank={local_rank} must be below nproc={nproc}: ranks count from 0 on each machine.")
    if world < 1 or offset + nproc > world:
        raise CRSConfigError(
            f"world_size={world} must be at least offset + nproc = {offset} + {nproc} (the processes of all machines "
            "together): raise --world_size."
        )


def available_cores():
    """CPU cores this process may run on (its affinity where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def device_errors(config_dict, nproc, uses_cuda):
    """A device per process: one GPU of ``gpu_id`` on CUDA (:func:`gpu_errors`), one CPU core otherwise. More CPU
    processes than cores only wait for each other, each holding its own copy of the data."""
    if uses_cuda:
        return gpu_errors(config_dict, nproc, uses_cuda)
    cores = available_cores()
    if nproc <= cores:
        return []
    return [
        f"nproc={nproc} CPU processes on a machine with {cores} cores: each process needs a core of its own (more "
        f"only wait for each other, each with its own copy of the data); use --nproc={cores} or fewer, or GPUs "
        "(gpu_id lists one per process)."
    ]


def gpu_errors(config_dict, nproc, uses_cuda):
    """On CUDA each process takes one GPU of ``gpu_id`` (RecBole asserts it): one line if there are too few."""
    if not uses_cuda:
        return []
    gpu_id = config_dict.get("gpu_id")
    gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (list, tuple)) else str(gpu_id if gpu_id is not None else "")
    gpus = [part for part in gpu_id.split(",") if part.strip()]
    if len(gpus) >= nproc:
        return []
    return [
        f"gpu_id {gpu_id!r} names {len(gpus)} GPU(s) for nproc={nproc} processes: each process takes one GPU, so "
        f"list {nproc}, e.g. gpu_id: '{','.join(map(str, range(nproc)))}' (or use_gpu: False to run the processes on "
        "the CPU with gloo)."
    ]
