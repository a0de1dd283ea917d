#!/usr/bin/env python3
"""Train and evaluate any model, recbole-crs's or RecBole's, with conversation-aware evaluation.

    python run_recbole_crs.py --model CRSPretrain --dataset ml-100k-crs --config_files "a.yaml b.yaml"

Like RecBole's run_recbole.py, any other ``--key=value`` overrides the config. Values are parsed as YAML
(``--crs_stages=[pretrain,finetune]``, ``--learning_rate=1e-3``), never evaluated. A wrong configuration
(unknown key, bad value, unreadable data_path, ...) prints ``error: <what to fix>`` and exits with status 2
before anything is trained or written.
"""

import argparse
import sys

from recbole_crs.data.ml100k import DEFAULT_DATASET
from recbole_crs.errors import CRSInputError


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # --data=x must not be taken for --dataset=x
    )
    parser.add_argument("--model", "-m", type=str, default="CRSPretrain", help="model name")
    parser.add_argument("--dataset", "-d", type=str, default=DEFAULT_DATASET, help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated config files")
    return parser


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
    from recbole_crs.quick_start import run_recbole_crs

    try:
        run_recbole_crs(model=args.model, dataset=args.dataset, config_file_list=config_file_list)
    except CRSInputError as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
