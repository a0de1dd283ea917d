"""The result file and the closing summary of a search, the same for both backends.

A search's outcome is ``trials``: a list of ``(params, result)`` in the order the trials ran, where ``params``
is the trial's searched values and ``result`` the objective's dict (``best_valid_score``,
``best_valid_result``, ``test_result``, ``test_results``) or ``{"error": str}``; and ``best``: the best
``(params, result)`` or ``None`` when no trial finished.
"""

import ast
import os
import re
import sys

from recbole.utils.utils import dict2str

from recbole_crs.runtime import atomic_write_text


def params2str(params):
    """``name:value, ...``: the trial line of the result file (as RecBole's ``HyperTuning.params2str``)."""
    return ", ".join(f"{name}:{value}" for name, value in params.items())


def _trial_text(params, result):
    lines = [params2str(params)]
    if "error" in result:
        return "\n".join(lines + [f"Failed: {result['error']}", "", ""])
    lines.append(f"Best valid score: {result['best_valid_score']}")
    lines.append("Valid result:\n" + dict2str(result["best_valid_result"]))
    lines.append("Test result:\n" + dict2str(result["test_result"]))
    for mode, mode_result in (result.get("test_results") or {}).items():
        lines.append(f"Test result ({mode}):\n" + dict2str(mode_result))
    return "\n".join(lines + ["", ""])


def _best_text(best):
    if best is None:
        return "Best params: none (no trial finished)\n"
    params, result = best
    return (
        f"Best params: {params2str(params)}\n"
        f"Best valid score: {result['best_valid_score']}\n"
        f"Best valid result:\n{dict2str(result['best_valid_result'])}\n"
        f"Best test result:\n{dict2str(result['test_result'])}\n"
    )


def result_text(trials, best):
    """Every trial's params and results (RecBole's ``export_result`` layout), then the best trial."""
    return "".join(_trial_text(params, result) for params, result in trials) + _best_text(best)


def write_result_file(output_file, trials, best):
    """Write :func:`result_text` to ``output_file`` (its folder is created), atomically: an interrupted
    write leaves the previous file, never a truncated one."""
    os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
    atomic_write_text(output_file, result_text(trials, best))


def print_summary(trials, best, output_file):
    """The closing lines: best params and result on stdout, failed trials on stderr."""
    if best is None:
        print("no trial finished; see", output_file)
    else:
        params, result = best
        print("best params: ", params)
        print("best result: ")
        print({key: result[key] for key in ("best_valid_score", "best_valid_result", "test_result")})
        print("all trials written to", output_file)
    failed = sum("error" in result for _, result in trials)
    if failed:
        print(f"run_hyper.py: {failed} of {len(trials)} trials failed; see {output_file}", file=sys.stderr)


_PARAM_SEPARATOR = re.compile(r", (?=[A-Za-z_][A-Za-z0-9_.]*:)")


def parse_params_str(text):
    """The params of a :func:`params2str` line (values as Python literals where they are one, else strings)."""
    params = {}
    for item in _PARAM_SEPARATOR.split(text.strip()):
        name, _, value = item.partition(":")
        try:
            params[name] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            params[name] = value.strip()
    return params


def read_result_file(path):
    """``(trials, best)`` of a result file written by :func:`write_result_file`, as far as it holds them: each trial
    as ``(params, {"best_valid_score": float})`` or ``(params, {"error": message})``; ``best`` is the file's
    ``Best params`` with its ``{"best_valid_score": float}``, or None."""
    with open(path, "r", encoding="utf-8") as f:
        lines = f.read().splitlines()
    trials, best = [], None
    for line, following in zip(lines, lines[1:]):
        if following.startswith("Failed: "):
            trials.append((parse_params_str(line), {"error": following[len("Failed: "):]}))
        elif following.startswith("Best valid score: "):
            result = {"best_valid_score": float(following[len("Best valid score: "):])}
            if line.startswith("Best params: "):
                best = (parse_params_str(line[len("Best params: "):]), result)
            else:
                trials.append((parse_params_str(line), result))
    return trials, best
