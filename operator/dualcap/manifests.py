"""Kubernetes objects from YAML or JSON files, as `kubectl get -o yaml` prints them.

What `dualcap plan` and `dualcap simulate` read: a file, a directory of .yaml/.yml/.json
files, or stdin; a ``List`` (or a ``<Kind>List``) is unpacked into its items.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


class InputError(Exception):
    """Bad input: reported as one line on stderr, exit code 2."""


def _objects_from(text: str, source: str) -> list[dict[str, Any]]:
    import yaml

    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise InputError(f"{source}: not valid YAML or JSON{where}") from err
    out: list[dict[str, Any]] = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise InputError(f"{source}: expected Kubernetes objects, found {type(doc).__name__}")
        kind = str(doc.get("kind", ""))
        if kind.endswith("List") and isinstance(doc.get("items"), list):
            item_kind = kind[: -len("List")] if kind != "List" else None
            for item in doc["items"]:
                if isinstance(item, dict):
                    if item_kind and "kind" not in item:
                        item = {**item, "kind": item_kind}
                    out.append(item)
        else:
            out.append(doc)
    return out


def load_objects(path: str) -> list[dict[str, Any]]:
    """Kubernetes objects from a file, a directory of .yaml/.yml/.json files, or '-'."""
    if path == "-":
        return _objects_from(sys.stdin.read(), "<stdin>")
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json"))
        if not files:
            raise InputError(f"{path}: no .yaml, .yml or .json files")
        return [o for f in files for o in _objects_from(f.read_text(), str(f))]
    if not p.exists():
        raise InputError(f"{path}: no such file")
    try:
        return _objects_from(p.read_text(), path)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not a text file") from err
