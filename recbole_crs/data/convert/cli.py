"""The command line: ``python -m recbole_crs.data.convert FORMAT ...`` (``--help``; ``docs/converters.md``).

One sub-command per format; the options every format takes come from :func:`add_common_options`, and
:func:`run` hands them to the format's ``convert_<format>`` function. A conversion error is one ``error:`` line
on stderr and exit status 2.
"""

import argparse
import sys

from recbole_crs.data.convert.conversion import COMMON_OPTIONS
from recbole_crs.data.convert.precrs import convert_precrs_lastfm
from recbole_crs.data.convert.recbole import (
    DEFAULT_ITEM_FIELD,
    DEFAULT_SEQ_SEPARATOR,
    DEFAULT_TIME_FIELD,
    DEFAULT_USER_FIELD,
    convert_recbole,
)
from recbole_crs.data.convert.regimes import ALL_CONVERSATIONS, CONVERSATION_REGIMES
from recbole_crs.data.convert.scpr import SCPR_FILES, convert_scpr_lastfm_star
from recbole_crs.data.fields import CANDIDATE_FIELD, SPLITS
from recbole_crs.data.simulator import DEFAULT_MAX_TURNS, DEFAULT_REC_LIST_SIZE, DEFAULT_SEED
from recbole_crs.errors import ConversionError

# The authors rank the target against up to this many items sharing the initial attribute.
AUTHORS_CANDIDATES = 100

_EXAMPLES_HELP = """examples:
  python -m recbole_crs.data.convert precrs-lastfm --item-dict item_dict_lastfm1.0.json \\
      --records val_lastfm.json --holdout valid=0.2,test=0.2 --candidates 100 --out dataset/lastfm-precrs
  python -m recbole_crs.data.convert scpr-lastfm-star --data-dir scpr-lastfm-star --out dataset/lastfm-star
  python -m recbole_crs.data.convert recbole --data-path DIR --dataset ml-100k --attribute-field class \\
      --out dataset/ml-100k-crs
  python -m recbole_crs.data.convert FORMAT --help    (options of one format)"""

def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m recbole_crs.data.convert",
        description="Convert conversational-recommendation data into recbole-crs atomic files "
        "(<out>/<name>.inter and <out>/<name>.item, format: docs/data-format.md). Output is byte-identical "
        "for the same input and --seed. Malformed input fails with the first problem and a count unless "
        "--skip-invalid is given (then it is skipped and counted per reason). See docs/converters.md.",
        epilog=_EXAMPLES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")

    precrs = formats.add_parser(
        "precrs-lastfm",
        help="the paper authors' Last.fm records (item_dict_lastfm1.0.json + *_lastfm.json)",
        description="Each record's context becomes the user's train rows (simulated conversations), its "
        "pos_item the final row with the real dialogue (confirmed = initial + [attr, n] turns, rejected = "
        "list turns, each with its dialogue turn in confirmed_turns/rejected_turns).",
    )
    precrs.add_argument(
        "--item-dict", required=True, help="item id -> tag ids JSON (item_dict_lastfm1.0.json)"
    )
    for split in SPLITS:
        precrs.add_argument(
            f"--{split}",
            action="append",
            default=[],
            metavar="FILE",
            help=f"record file whose target rows are '{split}' (repeatable)",
        )
    precrs.add_argument(
        "--records",
        action="append",
        default=[],
        metavar="FILE",
        help="record file whose targets are split by --holdout (repeatable)",
    )
    precrs.add_argument(
        "--holdout",
        metavar="valid=F,test=F",
        help="fractions of --records targets that become valid/test (seeded permutation); the rest are train",
    )
    _add_candidate_option(precrs)
    add_common_options(precrs)

    scpr = formats.add_parser(
        "scpr-lastfm-star",
        help="SCPR's LastFM* (item_dict.json + review_dict_{train,valid,test}.json)",
        description="Each user's train, valid, then test items become rows with that split; all "
        "conversations are simulated from the items' feature_index.",
    )
    scpr.add_argument("--data-dir", required=True, help="folder holding " + ", ".join(SCPR_FILES.values()))
    _add_candidate_option(scpr)
    add_common_options(scpr)

    recbole = formats.add_parser(
        "recbole",
        help="any RecBole atomic dataset with a token_seq item attribute field and a timestamp",
        description="Every interaction gets a simulated conversation over the item attribute field. No "
        "split column: RecBole's eval_args split it. No filtering: configure k-core etc. in RecBole.",
    )
    recbole.add_argument("--data-path", required=True, help="folder holding <dataset>/<dataset>.{inter,item}")
    recbole.add_argument("--dataset", required=True, help="RecBole dataset name, e.g. ml-100k")
    recbole.add_argument(
        "--attribute-field", required=True, help="token_seq field of .item, e.g. class for ml-100k"
    )
    recbole.add_argument(
        "--user-field", default=DEFAULT_USER_FIELD, help="token field of users in .inter (default: %(default)s)"
    )
    recbole.add_argument(
        "--item-field", default=DEFAULT_ITEM_FIELD, help="token field of items (default: %(default)s)"
    )
    recbole.add_argument(
        "--time-field", default=DEFAULT_TIME_FIELD, help="float field ordering interactions (default: %(default)s)"
    )
    recbole.add_argument(
        "--seq-separator", default=DEFAULT_SEQ_SEPARATOR, help="separator inside token_seq values (default: space)"
    )
    add_common_options(recbole)
    return parser


def _add_candidate_option(parser):
    parser.add_argument(
        "--candidates",
        type=int,
        default=0,
        metavar="N",
        help=f"add column {CANDIDATE_FIELD} to valid/test rows: up to N items sharing the row's initial "
        f"attribute, target removed, seeded (authors' protocol: {AUTHORS_CANDIDATES}; default 0 = no column)",
    )


def add_common_options(parser):
    parser.add_argument("--out", required=True, help="output folder, e.g. dataset/<name>")
    parser.add_argument("--name", help="dataset name (default: last part of --out)")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of every random choice (default: %(default)s)"
    )
    parser.add_argument(
        "--max-turns",
        type=int,
        default=DEFAULT_MAX_TURNS,
        help="turns per simulated conversation, initial statement included (default: %(default)s)",
    )
    parser.add_argument(
        "--rec-list-size",
        type=int,
        default=DEFAULT_REC_LIST_SIZE,
        help="items per simulated recommendation (default: %(default)s)",
    )
    parser.add_argument(
        "--skip-invalid", action="store_true", help="skip malformed records, counted per reason"
    )
    parser.add_argument(
        "--drop-items-without-attributes",
        action="store_true",
        help="drop items that have no attributes and the records/interactions using them (counted)",
    )
    parser.add_argument(
        "--conversations",
        choices=CONVERSATION_REGIMES,
        default=ALL_CONVERSATIONS,
        help="all: every row carries a conversation (default); targets: only evaluated rows and the last "
        "training row of the --train-conversations users (the paper's regime; precrs-lastfm: only real "
        "dialogues); every other row is a plain interaction",
    )
    parser.add_argument(
        "--train-conversations",
        metavar="X",
        help="with --conversations targets: a fraction in (0, 1] of the training users (e.g. 0.05) or a whole "
        "number >= 1 of users (e.g. 50) whose last training row keeps its conversation; seeded, and a "
        "smaller X picks a subset of a larger X's users (default: 1.0)",
    )


def run(args):
    """Dispatch parsed CLI arguments to a converter; returns its :class:`ConversionReport`."""
    common = {option: getattr(args, option) for option in COMMON_OPTIONS}
    if args.format == "precrs-lastfm":
        splits = {split: getattr(args, split) for split in SPLITS}
        return convert_precrs_lastfm(
            args.item_dict,
            args.out,
            records=args.records,
            holdout=args.holdout,
            candidates=args.candidates,
            **splits,
            **common,
        )
    if args.format == "scpr-lastfm-star":
        return convert_scpr_lastfm_star(args.data_dir, args.out, candidates=args.candidates, **common)
    return convert_recbole(
        args.data_path,
        args.dataset,
        args.attribute_field,
        args.out,
        user_field=args.user_field,
        item_field=args.item_field,
        time_field=args.time_field,
        seq_separator=args.seq_separator,
        **common,
    )


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except (ConversionError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # anything the converters did not name themselves: still one line
        print(f"error: cannot access '{error.filename}': {error.strerror or error}.", file=sys.stderr)
        return 2
    print(report)
    return 0
