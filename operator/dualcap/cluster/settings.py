"""How the operator runs: its settings, fixed for its life (`dualcap run`'s options, the
demo's or a test's)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dualcap.cluster.reconcile import RESYNC_SECONDS, SAFETY_PERIOD


def wall_clock() -> datetime:
    return datetime.now(UTC)


def pod_namespace() -> str:
    return os.environ.get("POD_NAMESPACE", "default")


@dataclass(frozen=True)
class OperatorSettings:
    # The time every decision is made at: the wall clock, unless a site runs on another
    # (the demo's accelerated day, a test's clock).
    clock: Callable[[], datetime] = wall_clock
    safety_period: timedelta = SAFETY_PERIOD  # every site reconciled at least this often
    resync_seconds: float = RESYNC_SECONDS  # the view checked against the API this often
    namespaces: tuple[str, ...] = ()  # ComputeLeases and pods watched only there (if any)
    # How to log in: a kubeconfig (None: $KUBECONFIG, the service account, ~/.kube/config)
    # and its context.
    kubeconfig: str | None = None
    context: str | None = None
    # Where Secrets named without a namespace are read (the operator's own namespace).
    secret_namespace: str = field(default_factory=pod_namespace)
    kueue_discovery_seconds: float = 30.0  # how often the API is asked whether it serves Kueue
