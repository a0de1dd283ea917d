"""Manifests of converted datasets: ``<name>.manifest.json`` lists the size and sha256 of every file.

A conversion interrupted between renames leaves files that differ from their manifest: :func:`manifest_problems`
names them, so CRSDataset refuses the data ("re-run the conversion") instead of loading a new ``.item`` with an
old ``.inter``.
"""

import json
import os

from recbole_crs.artifacts.fingerprints import sha256_of_file

MANIFEST_SUFFIX = ".manifest.json"


def manifest_path(folder, name):
    return os.path.join(folder, f"{name}{MANIFEST_SUFFIX}")


def manifest_problems(folder, name, digests=None):
    """Why the files of ``<folder>/<name>.*`` do not match ``<name>.manifest.json`` ([] if they do or no manifest).

    ``digests``: already computed :func:`file_digests`-style entries, to avoid hashing twice.
    """
    path = manifest_path(folder, name)
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [f"manifest '{path}' is unreadable ({error})"]
    problems = []
    for file_name, expected in sorted(files.items()):
        file_path = os.path.join(folder, file_name)
        if not os.path.isfile(file_path):
            problems.append(f"{file_name} is missing")
            continue
        actual = (digests or {}).get(file_name)
        if actual is None:
            actual = {"size": os.path.getsize(file_path), "sha256": sha256_of_file(file_path)}
        if actual["size"] != expected.get("size") or actual["sha256"] != expected.get("sha256"):
            problems.append(f"{file_name} differs from it")
    return problems
