"""Convert conversational-recommendation data into recbole-crs atomic files (``docs/data-format.md``).

Command line (``python -m recbole_crs.data.convert --help``; details in ``docs/converters.md``)::

    python -m recbole_crs.data.convert precrs-lastfm --item-dict item_dict_lastfm1.0.json \\
        --records val_lastfm.json --holdout valid=0.2,test=0.2 --candidates 100 --out dataset/lastfm-precrs
    python -m recbole_crs.data.convert scpr-lastfm-star --data-dir scpr-lastfm-star/ --out dataset/lastfm-star
    python -m recbole_crs.data.convert recbole --data-path DIR --dataset ml-100k --attribute-field class \\
        --out dataset/ml-100k-crs

Every converter writes ``<out>/<name>.item`` and ``<out>/<name>.inter`` (``name`` = last part of ``--out``),
byte-identical across runs: rows sorted, numbers formatted one way, every random choice drawn from a
``numpy`` generator seeded by ``--seed``. Malformed input is never dropped silently: by default the
conversion fails with the first problem and the number of malformed records; ``--skip-invalid`` skips them
and the report counts them per reason.

One module per job:

* one per source format, each reading it into rows: :mod:`.precrs` (the paper authors' Last.fm records),
  :mod:`.scpr` (SCPR's LastFM*), :mod:`.recbole` (any RecBole atomic dataset);
* :mod:`.conversion`: the options every format takes and the steps they share after reading (simulation,
  ``--candidates``, the regime, writing, the report);
* :mod:`.regimes`: ``--conversations all|targets`` and ``--train-conversations``;
* :mod:`.reading` (ids, item catalogue, JSON), :mod:`.writing` (atomic files and their manifest, published as
  a whole), :mod:`.problems` (malformed-record counts), :mod:`.report` (the printed report);
* :mod:`.cli`: the command line (``__main__`` runs it).
"""

from recbole_crs.data.convert.cli import build_parser, main, run
from recbole_crs.data.convert.conversion import COMMON_OPTIONS, ConversionOptions
from recbole_crs.data.convert.precrs import convert_precrs_lastfm, parse_holdout
from recbole_crs.data.convert.recbole import convert_recbole
from recbole_crs.data.convert.regimes import (
    ALL_CONVERSATIONS,
    CONVERSATION_REGIMES,
    TARGET_CONVERSATIONS,
    check_conversation_regime,
    parse_train_conversations,
)
from recbole_crs.data.convert.report import ConversionReport
from recbole_crs.data.convert.scpr import convert_scpr_lastfm_star
from recbole_crs.data.convert.writing import Row, format_float, inter_header, write_crs_dataset
from recbole_crs.errors import ConversionError

__all__ = [
    "ALL_CONVERSATIONS",
    "COMMON_OPTIONS",
    "CONVERSATION_REGIMES",
    "TARGET_CONVERSATIONS",
    "ConversionError",
    "ConversionOptions",
    "ConversionReport",
    "Row",
    "build_parser",
    "check_conversation_regime",
    "convert_precrs_lastfm",
    "convert_recbole",
    "convert_scpr_lastfm_star",
    "format_float",
    "inter_header",
    "main",
    "parse_holdout",
    "parse_train_conversations",
    "run",
    "write_crs_dataset",
]
