"""Several PowerBudgets name one site (GitOps owns one, each adapter its own): the site's
envelope is at every instant the lowest of them, each evaluated with its own windows,
events, lead time and margin; each keeps its own status; one price source per site."""

from __future__ import annotations

from datetime import timedelta

from dualcap.cluster.status import budget_status, site_status
from dualcap.planning import plan
from tests.planning.builders import SITE, T0, asics, budget, event, site, snapshot


def conditions(status) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_the_lowest_limit_binds() -> None:
    p = plan(snapshot(site(), budget(50_000, name="gitops"), budget(30_000, name="dr")), T0)
    assert p.limit_kw == 30_000 and p.hold is None
    assert p.budgets is not None and p.budgets.binding == "dr"
    assert site_status(p, 1, None, [], T0)["bindingBudget"] == "dr"


def test_each_budget_keeps_its_own_lead_time_margin_and_events() -> None:
    soon = event("ers", T0 + timedelta(minutes=10), T0 + timedelta(hours=1), 8_000)
    gitops = budget(50_000, name="gitops", margin_kw=500)
    dr = budget(60_000, name="openadr-site", events=[soon], lead_seconds=900)
    p = plan(snapshot(site(), gitops, dr), T0)
    # The adapter's 15-minute lead time already counts its event: 8,000 kW binds.
    assert p.limit_kw == 8_000 and p.budgets.binding == "openadr-site"  # type: ignore[union-attr]
    late = budget(60_000, name="openadr-site", events=[soon], lead_seconds=60)
    p = plan(snapshot(site(), gitops, late), T0)
    assert p.limit_kw == 49_500 and p.budgets.binding == "gitops"  # type: ignore[union-attr]
    change = p.budgets.envelope.next_change  # type: ignore[union-attr]
    assert change is not None and change.limit_kw == 8_000
    assert change.at == T0 + timedelta(minutes=9)
    assert site_status(p, 1, None, [], T0)["nextChange"]["budget"] == "openadr-site"


def test_every_budget_gets_a_status_of_its_own() -> None:
    p = plan(snapshot(site(), budget(50_000, name="gitops"), budget(30_000, name="dr")), T0)
    gitops = budget_status(p, "gitops", 1, None, T0)
    dr = budget_status(p, "dr", 1, None, T0)
    assert gitops["effectiveLimitKW"] == 50_000 and gitops["binding"] is False
    assert dr["effectiveLimitKW"] == 30_000 and dr["binding"] is True
    assert conditions(gitops)["Ready"] == ("True", "Active")


def test_a_second_price_source_is_reported_never_merged() -> None:
    a = budget(50_000, name="a-gitops", price=40)
    b = budget(50_000, name="b-feed", price=900)
    p = plan(snapshot(site(), a, b), T0)
    assert p.energy_price_usd_per_mwh == 40
    assert any(x.reason == "SecondPriceSource" and x.name == "b-feed" for x in p.problems)
    assert conditions(budget_status(p, "b-feed", 1, None, T0))["PriceSource"] == (
        "False",
        "SecondPriceSource",
    )
    assert conditions(budget_status(p, "a-gitops", 1, None, T0))["PriceSource"] == (
        "True",
        "PriceUsed",
    )


def test_an_invalid_budget_holds_the_site_and_is_stalled() -> None:
    p = plan(snapshot(site(), budget(50_000, name="ok"), budget(-1, name="bad"), *asics(2)), T0)
    assert p.hold is not None and p.hold.reason == "BudgetInvalid"
    assert conditions(budget_status(p, "bad", 1, None, T0))["Stalled"] == ("True", "InvalidSpec")
    assert budget_status(p, "ok", 1, None, T0)["effectiveLimitKW"] == 50_000


def test_one_budget_is_the_common_case() -> None:
    p = plan(snapshot(site(), budget(20_000, site_ref=SITE), *asics(3)), T0)
    assert p.limit_kw == 20_000 and p.budgets.binding == SITE  # type: ignore[union-attr]
