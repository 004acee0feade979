"""Argo CD health checks (docs/argocd/<group>/<kind>/health.lua) run by a real Lua runtime
against their test cases, in the layout of Argo CD's resource_customizations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

lupa = pytest.importorskip("lupa", reason="lupa is part of the test extras")

HEALTH = Path(__file__).resolve().parents[2] / "docs" / "argocd" / "dualcap.io"
KINDS = ("Site", "PowerBudget", "ComputeLease")
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def health(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """Evaluates the kind's health.lua as Argo CD does: `obj` global, returns a table."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    script = (HEALTH / kind / "health.lua").read_text()
    result = lua.execute(script)
    return {k: result[k] for k in ("status", "message") if result[k] is not None}


def cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for kind in KINDS:
        spec = yaml.safe_load((HEALTH / kind / "health_test.yaml").read_text())
        out += [(kind, test) for test in spec["tests"]]
    return out


@pytest.mark.parametrize(
    ("kind", "case"), cases(), ids=lambda v: v if isinstance(v, str) else v["inputPath"]
)
def test_health_check_cases(kind: str, case: dict[str, Any]) -> None:
    obj = yaml.safe_load((HEALTH / kind / case["inputPath"]).read_text())
    assert obj["kind"] == kind
    got = health(kind, obj)
    assert got["status"] in ARGO_STATUSES
    assert got == case["healthStatus"]


def test_every_kind_has_cases_for_each_outcome() -> None:
    for kind in KINDS:
        spec = yaml.safe_load((HEALTH / kind / "health_test.yaml").read_text())
        statuses = {t["healthStatus"]["status"] for t in spec["tests"]}
        assert {"Healthy", "Progressing", "Degraded"} <= statuses, kind
        for t in spec["tests"]:
            assert (HEALTH / kind / t["inputPath"]).exists()
