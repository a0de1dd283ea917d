"""``python -m recbole_crs.conversation``: multi-round conversations with any trained model (top floor).

    python -m recbole_crs.conversation --model CRSPretrain --dataset scpr-lastfm-star --episodes 4000
    python -m recbole_crs.conversation --checkpoint saved/AttrFM-....pth --policy MaxEntropy
    python -m recbole_crs.conversation --model AttrFM --dataset scpr-lastfm-star --split valid --sweep
    python -m recbole_crs.conversation --model Pop --dataset ml-100k-crs --interactive

Trains the model through quick_start (any ``--key=value`` is a config override, as in run_recbole_crs.py) or
loads ``--checkpoint``, then plays the episodes and writes ``<out>/conversation.json``, ``success_by_turn.png``
and ``episodes.tsv``. Defaults: properties/conversation.yaml. A wrong option prints one ``error:`` line and
exits with status 2 before anything is trained or loaded.
"""

import argparse

from recbole_crs.errors import CRSInputError, print_error

SCORE_GUIDED_OPTIONS = ("temperature", "mass_threshold", "ask_margin", "considered_items")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m recbole_crs.conversation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--model", "-m", default=None, help="model to train (default CRSPretrain)")
    parser.add_argument("--dataset", "-d", default=None, help="dataset with an item attribute field")
    parser.add_argument("--checkpoint", default=None, help="a trained model's .pth instead of training")
    parser.add_argument("--config_files", default=None, help="space-separated config files for training")
    parser.add_argument("--policy", default=None, help="AbsGreedy | MaxEntropy | ScoreGuided")
    parser.add_argument("--episodes", default=None, help="N (the first N of the shuffled pairs) or all")
    parser.add_argument("--split", default=None, help="valid | test")
    parser.add_argument("--max_turns", default=None, help="turns per episode, the opening one included (15)")
    parser.add_argument("--topk", default=None, help="items per recommendation (10)")
    parser.add_argument("--seed", default=None, help="episode randomness (opening attributes, ties, coins)")
    parser.add_argument("--batch_size", default=None, help="episodes played together (1000)")
    parser.add_argument("--threads", default=None, help="torch threads (1)")
    parser.add_argument("--out", default=None, help="output folder (default saved/conversation/<run>)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    guided = parser.add_argument_group("ScoreGuided (default: properties/conversation.yaml)")
    for option in SCORE_GUIDED_OPTIONS:
        guided.add_argument(f"--{option}", default=None)
    parser.add_argument("--sweep", action="store_true",
                        help="ScoreGuided on validation episodes: play the yaml's grid, print the best parameters")
    parser.add_argument("--interactive", action="store_true", help="play the user yourself at the terminal")
    parser.add_argument("--user", default=None, help="--interactive: the user whose history the ranker reads")
    return parser


def _overrides(args, unknown):
    """Check the command's combinations; returns the ScoreGuided overrides."""
    loose = [arg for arg in unknown if not (arg.startswith("--") and "=" in arg)]
    if loose:
        raise CRSInputError(f"arguments {loose} are neither options of this command nor --key=value config values.")
    if args.checkpoint and (unknown or args.config_files):
        raise CRSInputError("--key=value and --config_files configure training; with --checkpoint the checkpoint's "
                            "config is used: drop them or drop --checkpoint.")
    if args.sweep and args.interactive:
        raise CRSInputError("--sweep and --interactive exclude each other: choose one.")
    if args.user is not None and not args.interactive:
        raise CRSInputError("--user is for --interactive: add --interactive or drop --user.")
    overrides = {option: getattr(args, option) for option in SCORE_GUIDED_OPTIONS}
    return {key: value for key, value in overrides.items() if value is not None}


def _run(args, unknown):
    # imported here, not at the top: they load quick_start (every model and trainer), which `--help` and a wrong
    # option do not need
    from recbole_crs.conversation.interactive import play_interactive
    from recbole_crs.conversation.options import score_guided_parameters
    from recbole_crs.conversation.runner import build_policy, prepare, resolve_options, run_conversation
    from recbole_crs.conversation.sweep import check_sweep, run_sweep

    overrides = _overrides(args, unknown)
    options, defaults = resolve_options(
        policy=args.policy, split=args.split, episodes=args.episodes, max_turns=args.max_turns, topk=args.topk,
        seed=args.seed, batch_size=args.batch_size, threads=args.threads,
    )
    if overrides and options["policy"] != "ScoreGuided":
        raise CRSInputError(f"{', '.join('--' + key for key in overrides)} set ScoreGuided's parameters, but the "
                            f"policy is {options['policy']}: drop them or use --policy ScoreGuided.")
    if options["policy"] == "ScoreGuided":
        score_guided_parameters(defaults, None, None, options["topk"], overrides)  # checked before training
    if args.sweep:
        check_sweep(options, defaults)
    config_files = args.config_files.split() if args.config_files else None
    setup = prepare(args.model, args.dataset, args.checkpoint, config_files, None, options["threads"],
                    command_line=unknown)
    if args.interactive:
        play_interactive(setup, build_policy(setup, options, defaults, overrides), options, user=args.user)
    elif args.sweep:
        run_sweep(setup, options, defaults, overrides, out=args.out, show_progress=not args.no_progress)
    else:
        run_conversation(setup=setup, out=args.out, policy_parameters=overrides, show_progress=not args.no_progress,
                         **{key: options[key] for key in options})


def main(argv=None):
    """Exit status: 0, or 2 after one ``error:`` line for a wrong option, config, dataset or checkpoint."""
    args, unknown = build_parser().parse_known_args(argv)
    try:
        _run(args, unknown)
    except CRSInputError as error:
        print_error(error)
        return 2
    return 0
