"""Taints and tolerations as the scheduler and the taint-eviction controller read them.

Written from Kubernetes' own rules (k8s.io/api/core/v1 ``Toleration.ToleratesTaint`` and the
taint-eviction controller's ``getMinTolerationTime``), and kept apart from the operator's
planner: the sandbox is the cluster the operator is tested against, so a toleration bug in
the planner shows up as a pod that does not land, or is evicted, where the planner expected
otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

Toleration = Mapping[str, Any]
Taint = Mapping[str, Any]


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """Whether one toleration tolerates one taint.

    An empty effect matches every effect; an empty key matches every key (the API only
    admits it with ``Exists``, which then tolerates everything); ``Equal`` (or no operator)
    compares values, an absent value being the empty string; ``Exists`` ignores the value.
    """
    effect = toleration.get("effect") or ""
    if effect and effect != (taint.get("effect") or ""):
        return False
    key = toleration.get("key") or ""
    if key and key != (taint.get("key") or ""):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerated(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    """Whether any of the tolerations tolerates the taint."""
    return any(tolerates(t, taint) for t in tolerations)


def eviction_delay(tolerations: Iterable[Toleration], taints: Iterable[Taint]) -> float:
    """Seconds until the NoExecute ``taints`` evict a pod with these tolerations.

    0 when a taint is not tolerated (evicted now) or a used toleration's
    ``tolerationSeconds`` is zero or negative; ``math.inf`` when the pod stays (no taint,
    or no used toleration bounds its time); else the smallest ``tolerationSeconds``. As the
    taint-eviction controller does, each taint uses the first toleration that tolerates it.
    """
    tolerations = list(tolerations)
    used: list[Toleration] = []
    for taint in taints:
        if taint.get("effect") != "NoExecute":
            continue
        first = next((t for t in tolerations if tolerates(t, taint)), None)
        if first is None:
            return 0.0
        used.append(first)
    delay = math.inf
    for t in used:
        seconds = t.get("tolerationSeconds")
        if seconds is None:
            continue
        if float(seconds) <= 0:
            return 0.0
        delay = min(delay, float(seconds))
    return delay
