"""The lease life-cycle rules: each rule alone, then the chain (the first rule that fires
decides)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dualcap.planning import lifecycle
from dualcap.planning.lifecycle import (
    CHAIN,
    DELETING,
    ENDED,
    INVALID,
    NOT_STARTED,
    REJECTED,
    WORKLOAD_EVICTING,
    WORKLOAD_FINISHED,
    WORKLOAD_NO_GPUS,
    WORKLOAD_NOT_RESERVED,
    WORKLOAD_REJECTED,
    Context,
    Pods,
    first_stop,
)
from tests.planning.builders import T0, budget, lease, site, snapshot

NOW = Context(T0)
HOUR = timedelta(hours=1)


def entity(obj):
    """The snapshot's Lease built from one ComputeLease object."""
    (built,) = snapshot(site(), budget(), obj).leases
    return built


def deleting(obj):
    obj["metadata"]["deletionTimestamp"] = "2026-07-14T11:00:00Z"
    return obj


def rejected(obj, message="privileged"):
    obj["status"] = {
        "observedGeneration": obj["metadata"]["generation"],
        "conditions": [
            {
                "type": "Stalled",
                "status": "True",
                "reason": "TemplateRejected",
                "message": message,
                "lastTransitionTime": "2026-07-14T11:00:00Z",
            }
        ],
    }
    return obj


def invalid(obj):
    obj["spec"]["gpus"] = 12  # not a multiple of gpusPerPod
    return obj


def verdict(rule, obj):
    return rule.check(entity(obj), NOW)


# --- each rule alone, one line of intent each ---------------------------------------------


def test_invalid_fires_on_a_spec_that_does_not_validate() -> None:
    assert verdict(INVALID, invalid(lease("l")))[0] == "InvalidSpec"


def test_invalid_is_silent_on_a_valid_spec() -> None:
    assert verdict(INVALID, lease("l")) is None


def test_rejected_fires_on_a_template_refused_at_this_generation() -> None:
    assert verdict(INVALID, rejected(lease("l"))) is None  # the status itself is valid
    assert verdict(REJECTED, rejected(lease("l"), "no")) == ("TemplateRejected", "no")


def test_rejected_is_silent_once_the_lease_was_edited() -> None:
    obj = rejected(lease("l"))
    obj["metadata"]["generation"] = 2  # the refusal was of generation 1
    assert verdict(REJECTED, obj) is None


def test_rejected_is_silent_on_a_lease_being_deleted() -> None:
    assert verdict(REJECTED, deleting(rejected(lease("l")))) is None


def test_deleting_fires_on_a_deletion_timestamp() -> None:
    assert verdict(DELETING, deleting(lease("l")))[0] == "Deleted"


def test_ended_fires_at_the_end_itself() -> None:
    assert verdict(ENDED, lease("l", end=T0))[0] == "Ended"


def test_ended_is_silent_before_the_end() -> None:
    assert verdict(ENDED, lease("l", end=T0 + HOUR)) is None


def test_not_started_fires_before_the_start() -> None:
    assert verdict(NOT_STARTED, lease("l", start=T0 + HOUR))[0] == "NotStarted"


def test_not_started_is_silent_from_the_start_on() -> None:
    assert verdict(NOT_STARTED, lease("l", start=T0)) is None


def test_an_open_lease_passes_every_rule() -> None:
    assert all(verdict(rule, lease("l")) is None for rule in CHAIN)


# --- the chain ----------------------------------------------------------------------------


def test_the_chain_is_in_order() -> None:
    assert CHAIN == (
        WORKLOAD_FINISHED,
        WORKLOAD_EVICTING,
        WORKLOAD_REJECTED,
        WORKLOAD_NO_GPUS,
        WORKLOAD_NOT_RESERVED,
        INVALID,
        REJECTED,
        DELETING,
        ENDED,
        NOT_STARTED,
    )


@pytest.mark.parametrize(
    ("obj", "rule"),
    [
        (invalid(deleting(lease("l"))), INVALID),  # invalid wins over being deleted
        (deleting(lease("l", end=T0 - HOUR)), DELETING),  # deleted wins over ended
        (rejected(lease("l", end=T0 - HOUR)), REJECTED),  # rejected wins over ended
        (lease("l", start=T0 - 2 * HOUR, end=T0 - HOUR), ENDED),
        (lease("l", start=T0 + HOUR, end=T0 + 2 * HOUR), NOT_STARTED),
        (lease("l", start=T0 - HOUR, end=T0 + HOUR), None),  # open: admission decides
    ],
    ids=[
        "invalid-first",
        "deleted-before-ended",
        "rejected-before-ended",
        "ended",
        "not-started",
        "active",
    ],
)
def test_the_first_rule_that_fires_decides(obj, rule) -> None:
    stop = first_stop(entity(obj), NOW)
    assert (stop.rule if stop else None) is rule


def test_bad_input_keeps_its_pods_and_a_finished_lease_loses_them() -> None:
    # a Workload's pods are its Job's: its rules keep them (Kueue stops them)
    workload = {"finished", "evicting", "rejected by the check", "no GPUs", "quota not reserved"}
    assert {r.name for r in CHAIN if r.pods is Pods.KEEP} == {"invalid", "rejected"} | workload
    assert all(r.pod_reason is not None for r in CHAIN if r.pods is Pods.DELETE)


def test_phases_of_the_rules() -> None:
    phases = {r.name: r.phase for r in CHAIN}
    assert phases == {
        "finished": "Completed",
        "evicting": "Preempted",
        "rejected by the check": "Failed",
        "no GPUs": "Running",
        "quota not reserved": "Pending",
        "invalid": "Failed",
        "rejected": "Failed",
        "deleting": "Completed",
        "ended": "Completed",
        "not started": "Pending",
    }


def test_a_chain_may_be_given() -> None:
    # The rules are data: a chain of one rule decides by that rule alone.
    obj = entity(lease("l", start=T0 + HOUR))
    assert first_stop(obj, NOW, chain=(lifecycle.ENDED,)) is None
