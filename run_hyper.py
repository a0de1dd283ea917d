#!/usr/bin/env python3
"""Search hyper-parameters of a recbole-crs (or RecBole) model with RecBole's HyperTuning or Ray Tune.

    python run_hyper.py --model CRSPretrain --params_file properties/hyper/CRSPretrain.hyper
    python run_hyper.py --model SASRec --params_file properties/hyper/SASRec.hyper --algo exhaustive \\
        --config_files "my.yaml" --output_file sasrec.result --epochs=5
    python run_hyper.py --model SASRec --params_file properties/hyper/SASRec.hyper --tool Ray --algo random \\
        --max_evals 8

Any other --key=value is a fixed config value for every trial. See docs/tuning.md.
"""

from recbole_crs.tuning.cli import main

if __name__ == "__main__":
    main()
