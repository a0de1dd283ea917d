"""Memory of the augmented interaction table: RecBole's SequentialDataset vs CRSDataset.

RecBole list-augments every .inter field, so a conversation field of width C becomes an
[N, MAX_ITEM_LIST_LENGTH, C] tensor; CRSDataset keeps conversation fields per row. Each variant runs in its
own process so peak RSS is comparable.

    python benchmarks/dataset_memory.py [--dataset ml-100k-crs] [--data_path dataset/]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def measure(variant, dataset, data_path):
    from recbole.data.dataset import SequentialDataset

    from recbole_crs.config import Config
    from recbole_crs.data.dataset import CRSDataset
    from recbole_crs.data.ml100k import ensure_builtin, is_builtin

    if is_builtin(dataset):
        ensure_builtin(dataset, data_path)
    config = Config("SASRec", dataset, config_dict={"data_path": data_path, "state": "ERROR"})
    started = time.perf_counter()
    built = (CRSDataset if variant == "CRSDataset" else SequentialDataset)(config)
    built._change_feat_format()
    seconds = time.perf_counter() - started
    tensors = built.inter_feat.interaction
    largest = sorted(tensors.items(), key=lambda kv: -kv[1].nelement() * kv[1].element_size())[:4]
    if hasattr(built.inter_feat, "nbytes"):  # CRSDataset's lazy windows / encoded columns: their storage too
        inter_bytes = built.inter_feat.nbytes()
    else:
        inter_bytes = sum(t.nelement() * t.element_size() for t in tensors.values())
    return {
        "variant": variant,
        "rows": len(built.inter_feat),
        "inter_feat_MiB": inter_bytes / 2**20,
        "largest_fields": {k: list(v.shape) for k, v in largest},
        "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_and_augment_s": seconds,
    }


def main():
    from recbole_crs.data.ml100k import ML100K_CRS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=ML100K_CRS)
    parser.add_argument("--data_path", default="dataset/")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.dataset, args.data_path)))
        return
    rows = []
    for variant in ("SequentialDataset", "CRSDataset"):
        command = [sys.executable, __file__, "--dataset", args.dataset, "--data_path", args.data_path, "--variant", variant]
        output = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ}).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    print(f"| dataset class | rows | inter_feat MiB | peak RSS MiB | load+augment s | largest fields |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['rows']} | {r['inter_feat_MiB']:.1f} | {r['peak_rss_MiB']:.0f} | "
              f"{r['load_and_augment_s']:.1f} | {r['largest_fields']} |")


if __name__ == "__main__":
    main()
