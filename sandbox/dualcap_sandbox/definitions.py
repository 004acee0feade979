"""The official schemas of the built-in kinds (shipped by kubernetes-validate), for the
OpenAPI endpoints kubectl reads and for strategic merge patch."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "1.37.0"


@lru_cache(maxsize=1)
def definitions() -> dict[str, dict[str, Any]]:
    """Definition name -> schema (JSON Schema flavoured, refs as ``#/$defs/NAME``)."""
    import kubernetes_validate

    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    candidates = sorted(
        base.glob("v*-local"), key=lambda p: [int(x) for x in p.name[1:-6].split(".")]
    )
    preferred = base / f"v{SCHEMA_VERSION}-local"
    folder = preferred if preferred.exists() else candidates[-1]
    data = json.loads((folder / "_definitions.json").read_text())
    return dict(data.get("$defs") or data.get("definitions") or {})


@lru_cache(maxsize=1)
def by_gvk() -> dict[tuple[str, str, str], str]:
    out = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            out[(gvk.get("group", ""), gvk["version"], gvk["kind"])] = name
    return out


def schema_for(group: str, version: str, kind: str) -> dict[str, Any] | None:
    name = by_gvk().get((group, version, kind))
    return definitions().get(name) if name else None


def resolve(node: dict[str, Any] | None) -> dict[str, Any]:
    """Follow ``$ref`` (and a single ``allOf``) to the schema node itself."""
    while node:
        ref = node.get("$ref")
        if ref:
            node = definitions().get(ref.rsplit("/", 1)[-1], {})
            continue
        all_of = node.get("allOf")
        if all_of and len(all_of) == 1:
            node = all_of[0]
            continue
        break
    return node or {}
