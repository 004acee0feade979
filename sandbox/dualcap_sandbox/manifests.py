"""Objects to seed the sandbox with: YAML or JSON files, or directories of them.

The sandbox's own small loader (it depends on nothing of the operator): every document of
every .yaml/.yml/.json file, ``List`` kinds unpacked into their items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ManifestError(Exception):
    """A file that cannot be read as Kubernetes objects."""


def objects_from(text: str, source: str) -> list[dict[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        raise ManifestError(f"{source}: not valid YAML or JSON: {err}") from err
    out: list[dict[str, Any]] = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(
                f"{source}: expected Kubernetes objects, found {type(doc).__name__}"
            )
        kind = str(doc.get("kind", ""))
        if kind.endswith("List") and isinstance(doc.get("items"), list):
            item_kind = kind[: -len("List")] or None
            for item in doc["items"]:
                if isinstance(item, dict):
                    out.append({"kind": item_kind, **item} if item_kind else item)
        else:
            out.append(doc)
    return out


def read_objects(path: str | Path) -> list[dict[str, Any]]:
    """The objects of a file, or of every .yaml/.yml/.json file in a directory (by name)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json"))
        return [o for f in files for o in objects_from(f.read_text(), str(f))]
    if not p.is_file():
        raise ManifestError(f"{path}: no such file or directory")
    return objects_from(p.read_text(), str(p))
