#!/usr/bin/env python3
"""Train and evaluate any model, recbole-crs's or RecBole's, with conversation-aware evaluation.

    python run_recbole_crs.py --model CRSPretrain --dataset ml-100k-crs --config_files "a.yaml b.yaml"

Like RecBole's run_recbole.py, any other ``--key=value`` overrides the config. Values are parsed as YAML
(``--crs_stages=[pretrain,finetune]``, ``--learning_rate=1e-3``), never evaluated. A wrong configuration
(unknown key, bad value, unreadable data_path, ...) prints ``error: <what to fix>`` and exits with status 2
before anything is trained or written; so does a wrong checkpoint, data file or launch found later, in any
process. A process of a multi-process run that is killed (e.g. by the out-of-memory killer) is one ``error:`` line
too, and the exit status is 128 + the signal number, as a shell reports a killed command.

Several processes, RecBole's way (``torch.distributed``; gloo on CPUs, NCCL on GPUs; see the README section
"Multi-process and multi-machine training"):

    python run_recbole_crs.py --model CRSPretrain --nproc=2                       # 2 processes on this machine
    python run_recbole_crs.py --nproc=4 --gpu_id=0,1,2,3                          # one GPU each
    python run_recbole_crs.py --nproc=4 --world_size=8 --ip=10.0.0.1 --port=5678 --group_offset=4   # machine 2 of 2
"""

import argparse
import sys

from recbole_crs import quick_start
from recbole_crs.config import parse_value
from recbole_crs.data.ml100k import DEFAULT_DATASET
from recbole_crs.errors import CRSInputError, WorkerDiedError, print_error


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # --data=x must not be taken for --dataset=x
    )
    parser.add_argument("--model", "-m", type=str, default="CRSPretrain", help="model name")
    parser.add_argument("--dataset", "-d", type=str, default=DEFAULT_DATASET, help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated config files")
    launch = parser.add_argument_group("several processes (RecBole's distributed options)")
    launch.add_argument("--nproc", type=str, default="1", help="processes on this machine (default 1)")
    launch.add_argument("--world_size", type=str, default="-1",
                        help="processes of all machines together (default -1: nproc)")
    launch.add_argument("--ip", type=str, default="localhost", help="address of the machine of rank 0")
    launch.add_argument("--port", type=str, default="5678", help="free port on the machine of rank 0")
    launch.add_argument("--group_offset", type=str, default="0",
                        help="global rank of this machine's first process (default 0)")
    return parser


def _launch_options(args):
    """The launcher's options as values (checked by ``recbole_crs.settings.launch.check_launch``)."""
    return {
        "nproc": parse_value(args.nproc),
        "world_size": parse_value(args.world_size),
        "ip": args.ip,
        "port": parse_value(args.port),
        "group_offset": parse_value(args.group_offset),
    }


def main(argv=None):
    """Run from the command line; returns the exit status (0, or 2 for a configuration or data error)."""
    args, unknown = build_parser().parse_known_args(argv)
    loose = [arg for arg in unknown if not (arg.startswith("--") and "=" in arg)]
    if loose:
        flag, value = (loose + [""])[:2]
        example = f"{flag}={value}" if flag.startswith("--") and value and not value.startswith("-") else "--epochs=5"
        print(f"error: arguments {loose} are not --key=value: write config values as --key=value, e.g. {example}",
              file=sys.stderr)
        return 2
    config_file_list = args.config_files.strip().split(" ") if args.config_files else None
    try:
        # The config values go to Config in every process; the launcher's own options to the launcher.
        quick_start.run(model=args.model, dataset=args.dataset, config_file_list=config_file_list,
                        command_line=unknown, **_launch_options(args))
    except CRSInputError as error:
        print_error(error)
        return 2
    except WorkerDiedError as error:
        print_error(error)
        return error.exit_status
    return 0


if __name__ == "__main__":
    sys.exit(main())
