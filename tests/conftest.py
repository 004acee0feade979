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


def wall_clock_examples() -> list[dict[str, Any]]:
    """The examples for tests that run on the wall clock: the budget's limit windows,
    events and price windows removed (a flat 50 MW at 28 USD/MWh), so what the test sees
    does not depend on the hour it runs at (at 140 USD/MWh on a weekday afternoon in
    Texas, mining stops before the test has cut anything)."""
    from dualcap.manifests import load_objects

    out = []
    for obj in load_objects(str(EXAMPLES)):
        if obj.get("kind") == "PowerBudget":
            spec = obj["spec"]
            spec.pop("windows", None)
            spec.pop("events", None)
            spec.get("energyPrice", {}).pop("windows", None)
        out.append(obj)
    return out


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
