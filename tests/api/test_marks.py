"""The curtailment marks: one patch each way, read back by the same module."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dualcap.api.common import CURTAILED_AT_ANNOTATION, parse_rfc3339
from dualcap.api.marks import (
    RESUMED_AT_ANNOTATION,
    curtail_patch,
    is_marked,
    marks_complete,
    merge_patch,
    release_patch,
    resume_patch,
    stamp,
)

AT = datetime(2026, 7, 14, 19, 0, 0, 250_000, tzinfo=ZoneInfo("America/Chicago"))
OTHER_TAINT = {"key": "gpu.example/maintenance", "value": "x", "effect": "NoSchedule"}


def node(**spec: object) -> dict:
    return {
        "kind": "Node",
        "metadata": {"name": "asic-1", "resourceVersion": "41", "annotations": {"a": "b"}},
        "spec": dict(spec),
    }


def test_a_stamp_is_the_same_instant_whatever_the_clock_zone() -> None:
    # A site clock in Central time once wrote its local time with a 'Z': five hours off,
    # so the ramp never saw its own resumes.
    assert parse_rfc3339(stamp(AT)) == AT
    assert stamp(AT).endswith(".250000Z")


def test_curtail_then_resume_round_trips_and_keeps_what_is_not_ours() -> None:
    start = node(taints=[OTHER_TAINT])
    curtailed = merge_patch(start, curtail_patch(start, AT))
    assert is_marked(curtailed) and marks_complete(curtailed)
    assert OTHER_TAINT in curtailed["spec"]["taints"]
    assert curtailed["metadata"]["annotations"]["a"] == "b"
    resumed = merge_patch(curtailed, resume_patch(curtailed, AT + timedelta(minutes=5)))
    assert not is_marked(resumed) and not resumed["spec"].get("unschedulable")
    assert resumed["spec"]["taints"] == [OTHER_TAINT]
    assert parse_rfc3339(resumed["metadata"]["annotations"][RESUMED_AT_ANNOTATION]) == AT + timedelta(minutes=5)  # fmt: skip


def test_a_second_curtailment_keeps_the_first_time() -> None:
    once = merge_patch(node(), curtail_patch(node(), AT))
    twice = curtail_patch(once, AT + timedelta(hours=1))
    assert twice["metadata"]["annotations"][CURTAILED_AT_ANNOTATION] == stamp(AT)


def test_patches_carry_the_resource_version_they_were_computed_from() -> None:
    assert curtail_patch(node(), AT)["metadata"]["resourceVersion"] == "41"
    assert resume_patch(node(), AT)["metadata"]["resourceVersion"] == "41"


def test_a_partial_mark_is_marked_but_not_complete() -> None:
    tainted_only = node(taints=[{"key": "dualcap.io/curtailed", "effect": "NoExecute"}])
    assert is_marked(tainted_only) and not marks_complete(tainted_only)
    cordoned_by_a_person = node(unschedulable=True)
    assert not is_marked(cordoned_by_a_person)


def test_release_removes_marks_and_stamps() -> None:
    curtailed = merge_patch(node(), curtail_patch(node(), datetime.now(UTC)))
    released = merge_patch(curtailed, release_patch(curtailed))
    assert not is_marked(released)
    assert set(released["metadata"]["annotations"]) == {"a"}
    assert "taints" not in released["spec"] and "unschedulable" not in released["spec"]
