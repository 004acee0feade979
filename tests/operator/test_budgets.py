"""Budgets that compose, on the sandbox with the real operator: a second PowerBudget for
the example site (an adapter's, say) lowers its envelope; both keep a status of their own;
removing it gives the site its own envelope back."""

from __future__ import annotations

from tests.operator.conftest import SITE, Running
from tests.operator.test_operator import API, http


def status_of(sb, name: str) -> dict:
    return (sb.store.get(sb.store.rt("dualcap.io", "powerbudgets"), None, name) or {}).get(
        "status"
    ) or {}


async def test_a_second_budget_lowers_the_envelope_and_both_report(site: Running) -> None:
    sb = site.sb
    await site.settle()
    second = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "PowerBudget",
        "metadata": {"name": f"openadr-{SITE}", "labels": {"dualcap.io/adapter": "openadr"}},
        "spec": {"siteRef": SITE, "limitKW": 20_000, "leadTimeSeconds": 0},
    }
    code, body = await http(sb, "POST", f"{API}/powerbudgets", second, "application/json")
    assert code == 201, body
    status = await site.settle()
    assert status["limitKW"] == 20_000 and status["committedKW"] <= 20_000
    assert status["bindingBudget"] == f"openadr-{SITE}"
    own, adapter = status_of(sb, SITE), status_of(sb, f"openadr-{SITE}")
    assert own["effectiveLimitKW"] == 49_500 and own["binding"] is False
    assert adapter["effectiveLimitKW"] == 20_000 and adapter["binding"] is True
    for s in (own, adapter):
        ready = {c["type"]: c["status"] for c in s["conditions"]}["Ready"]
        assert ready == "True" and s["observedGeneration"] == 1

    code, _ = await http(sb, "DELETE", f"{API}/powerbudgets/openadr-{SITE}")
    assert code == 200
    site.clock.advance(minutes=10)  # past minCurtailedSeconds
    status = await site.settle()
    assert status["limitKW"] == 49_500 and status["bindingBudget"] == SITE
