"""Status conditions are decided from the plan's typed reasons, never from its messages."""

from __future__ import annotations

import pytest

from dualcap.cluster.status import lease_status, site_status
from dualcap.planning import plan
from tests.planning.builders import T0, asics, budget, lease, site, snapshot


def conditions(status) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def status_of(*parts, name: str = "s1", failures=()):
    p = plan(snapshot(*parts, name=name), T0)
    return p, site_status(p, 1, None, list(failures), T0)


def test_a_settled_site_is_ready() -> None:
    _, s = status_of(site(), budget(), *asics(2))
    assert conditions(s) == {
        "Ready": ("True", "Settled"),
        "WithinEnvelope": ("True", "InsideEnvelope"),
        "Reconciling": ("False", "Settled"),
        "Stalled": ("False", "Settled"),
    }


def test_an_invalid_site_is_stalled_with_no_figures() -> None:
    bad = site()
    bad["spec"]["facility"]["pue"] = 9
    p, s = status_of(bad, budget())
    assert p.hold and p.hold.reason == "SiteInvalid"
    assert conditions(s)["Stalled"] == ("True", "InvalidSpec") and "committedKW" not in s


@pytest.mark.parametrize(
    ("parts", "hold", "reason", "stalled"),
    [
        ([site(suspend=True), budget()], "Suspended", "Suspended", "False"),
        ([site(suspend=True)], "Suspended", "Suspended", "True"),  # and nothing to run on
        ([site()], "NoPowerBudget", "NoPowerBudget", "True"),
        ([site(), budget(limit_kw=-1)], "BudgetInvalid", "InvalidSpec", "True"),
    ],
    ids=["suspended", "suspended-no-budget", "no-budget", "invalid-budget"],
)
def test_a_hold_decides_ready_and_stalled(parts, hold, reason, stalled) -> None:
    p, s = status_of(*parts, *asics(1))
    assert p.hold is not None and p.hold.reason == hold
    assert conditions(s)["Ready"] == ("False", reason)
    assert conditions(s)["Stalled"] == (stalled, reason)


def test_words_in_a_message_do_not_change_the_reason() -> None:
    # The hold message names the site; a site named like a reason is still only missing
    # its PowerBudget.
    name = "several-suspended"
    p, s = status_of(site(name=name), *asics(1, site_name=name), name=name)
    assert "several" in (p.hold_reason or "") and "suspended" in (p.hold_reason or "")
    assert conditions(s)["Ready"] == ("False", "NoPowerBudget")


def test_failed_commands_keep_the_site_reconciling() -> None:
    _, s = status_of(site(), budget(), *asics(1), failures=["Curtail a00: 409 Conflict"])
    assert conditions(s)["Ready"] == ("False", "ApplyFailed")
    assert conditions(s)["Reconciling"] == ("True", "ApplyFailed")


def test_a_failed_lease_is_stalled_and_a_pending_one_is_not() -> None:
    bad = lease("bad")
    bad["spec"]["gpus"] = 12
    p = plan(snapshot(site(), budget(), bad, lease("waits")), T0)
    by_name = {d.lease.name: d for d in p.leases}
    failed = lease_status(by_name["bad"], "s1", None, T0)
    assert failed["phase"] == "Failed" and conditions(failed)["Stalled"] == ("True", "InvalidSpec")
    pending = lease_status(by_name["waits"], "s1", None, T0)
    assert pending["phase"] == "Pending"
    assert conditions(pending)["Stalled"][0] == "False"
    assert conditions(pending)["Admitted"] == ("False", "InsufficientGPUs")


def test_a_template_rejected_by_the_executor_fails_the_lease() -> None:
    p = plan(snapshot(site(), budget(), lease("l")), T0)
    s = lease_status(p.leases[0], "s1", None, T0, rejected="privileged containers")
    assert s["phase"] == "Failed" and conditions(s)["Stalled"] == ("True", "TemplateRejected")
