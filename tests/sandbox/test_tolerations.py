"""The sandbox's own toleration rules (Kubernetes' ToleratesTaint and taint eviction's
tolerationSeconds), independent of the planner's: each case is a line of the Kubernetes
rules, so a toleration bug in the planner shows up on the sandbox instead of being shared."""

from __future__ import annotations

import math

import pytest

from dualcap_sandbox.quantity import quantity
from dualcap_sandbox.tolerations import eviction_delay, tolerated, tolerates

CURTAILED = {"key": "dualcap.io/curtailed", "value": "true", "effect": "NoExecute"}


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        # Equal (the default operator) compares key and value.
        ({"key": "dualcap.io/curtailed", "operator": "Equal", "value": "true"}, True),
        ({"key": "dualcap.io/curtailed", "value": "true"}, True),
        ({"key": "dualcap.io/curtailed", "operator": "Equal", "value": "false"}, False),
        # Equal with no value matches only a taint without a value.
        ({"key": "dualcap.io/curtailed", "operator": "Equal"}, False),
        # Exists ignores the value.
        ({"key": "dualcap.io/curtailed", "operator": "Exists"}, True),
        ({"key": "dualcap.io/curtailed", "operator": "Exists", "value": "x"}, True),
        # Another key never matches.
        ({"key": "dualcap.io/other", "operator": "Exists"}, False),
        # An empty key with Exists tolerates every taint.
        ({"operator": "Exists"}, True),
        ({"key": "", "operator": "Exists"}, True),
        # An empty effect matches every effect; a named one only itself.
        ({"key": "dualcap.io/curtailed", "operator": "Exists", "effect": ""}, True),
        ({"key": "dualcap.io/curtailed", "operator": "Exists", "effect": "NoExecute"}, True),
        ({"key": "dualcap.io/curtailed", "operator": "Exists", "effect": "NoSchedule"}, False),
        ({"operator": "Exists", "effect": "NoSchedule"}, False),
        # An operator Kubernetes does not know tolerates nothing.
        ({"key": "dualcap.io/curtailed", "operator": "In", "value": "true"}, False),
    ],
)
def test_one_toleration_against_one_taint(toleration: dict, expected: bool) -> None:
    assert tolerates(toleration, CURTAILED) is expected


def test_a_taint_without_a_value_is_tolerated_by_equal_without_one() -> None:
    taint = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    assert tolerates({"key": "node.kubernetes.io/unschedulable"}, taint)
    assert not tolerates({"key": "node.kubernetes.io/unschedulable", "value": "x"}, taint)


def test_any_of_several_tolerations_suffices() -> None:
    assert tolerated([{"key": "a", "operator": "Exists"}, {"operator": "Exists"}], CURTAILED)
    assert not tolerated([{"key": "a", "operator": "Exists"}], CURTAILED)
    assert not tolerated([], CURTAILED)


def test_an_untolerated_noexecute_taint_evicts_at_once() -> None:
    assert eviction_delay([], [CURTAILED]) == 0


def test_a_toleration_without_seconds_keeps_the_pod_forever() -> None:
    assert (
        eviction_delay([{"key": "dualcap.io/curtailed", "operator": "Exists"}], [CURTAILED])
        == math.inf
    )


def test_no_noexecute_taint_keeps_the_pod() -> None:
    assert eviction_delay([], []) == math.inf
    assert eviction_delay([], [{"key": "k", "effect": "NoSchedule"}]) == math.inf


def test_toleration_seconds_bound_the_stay() -> None:
    toleration = {"key": "dualcap.io/curtailed", "operator": "Exists", "tolerationSeconds": 30}
    assert eviction_delay([toleration], [CURTAILED]) == 30


def test_zero_or_negative_seconds_evict_at_once() -> None:
    for seconds in (0, -5):
        toleration = {"operator": "Exists", "tolerationSeconds": seconds}
        assert eviction_delay([toleration], [CURTAILED]) == 0


def test_each_taint_uses_its_first_matching_toleration() -> None:
    # The first match (no seconds) is used, the later bounded one is not: the pod stays.
    tolerations = [
        {"key": "dualcap.io/curtailed", "operator": "Exists"},
        {"operator": "Exists", "tolerationSeconds": 10},
    ]
    assert eviction_delay(tolerations, [CURTAILED]) == math.inf
    # In the other order the bounded one is first.
    assert eviction_delay(tolerations[::-1], [CURTAILED]) == 10


def test_the_smallest_bound_over_the_taints_wins_and_one_untolerated_evicts() -> None:
    unreachable = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
    tolerations = [
        {"key": "dualcap.io/curtailed", "operator": "Exists", "tolerationSeconds": 60},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300},
    ]
    assert eviction_delay(tolerations, [CURTAILED, unreachable]) == 60
    assert eviction_delay(tolerations[1:], [CURTAILED, unreachable]) == 0


@pytest.mark.parametrize(
    ("text", "value"),
    [("8", 8.0), ("500m", 0.5), ("2Ki", 2048.0), ("1.5G", 1.5e9), ("1e3", 1000.0), (4, 4.0)],
)
def test_quantities(text: object, value: float) -> None:
    assert quantity(text) == value


@pytest.mark.parametrize("bad", ["", "abc", "8 GPUs", True, None])
def test_not_quantities(bad: object) -> None:
    with pytest.raises(ValueError):
        quantity(bad)
