"""Shared fixtures: the repository's paths, examples and generated CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CRDS = ROOT / "crds"


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def example_objects() -> list[dict[str, Any]]:
    return [d for f in sorted(EXAMPLES.glob("*.yaml")) for d in load_docs(f)]


def crd_schemas() -> dict[str, dict[str, Any]]:
    """Kind -> openAPIV3Schema of the committed CRDs."""
    out = {}
    for f in sorted(CRDS.glob("*.yaml")):
        crd = load_docs(f)[0]
        out[crd["spec"]["names"]["kind"]] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return out


@pytest.fixture(scope="session")
def schemas() -> dict[str, dict[str, Any]]:
    return crd_schemas()
