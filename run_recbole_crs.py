"""Train and evaluate any model, recbole-crs's or RecBole's, with conversation-aware evaluation.

    python run_recbole_crs.py --model CRSPretrain --dataset ml-100k-crs --config_files "a.yaml b.yaml"

Like RecBole's run_recbole.py, any other ``--key=value`` overrides the config.
"""

import argparse

from recbole_crs.data.ml100k import DEFAULT_DATASET
from recbole_crs.quick_start import run_recbole_crs

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", type=str, default="CRSPretrain", help="model name")
    parser.add_argument("--dataset", "-d", type=str, default=DEFAULT_DATASET, help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated config files")
    args, _ = parser.parse_known_args()

    config_file_list = args.config_files.strip().split(" ") if args.config_files else None
    run_recbole_crs(model=args.model, dataset=args.dataset, config_file_list=config_file_list)
