"""Running the operator: `dualcap run`, and in-process for tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Sequence

import kopf

from dualcap.cluster.metrics import Metrics
from dualcap.cluster.operator import Operator
from dualcap.cluster.settings import OperatorSettings
from dualcap.handlers.registry import build_registry, settings

# kopf announces an operator in the peering object as it starts; this is how long a new
# operator waits to learn of peers before acting.
PEERING_GRACE_SECONDS = 5.0


async def operate(
    state: Operator | None = None,
    liveness: str | None = None,
    peering: str | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    metrics_port: int | None = None,
    priority: int = 0,
) -> None:
    """Run ``state`` (an operator on the default settings when None) until ``stop_flag``
    (or cancellation). Its ``settings.namespaces`` limit the ComputeLeases and pods
    watched; cluster-scoped resources are always watched."""
    memo = kopf.Memo()
    memo.dualcap = state = state or Operator()
    namespaces = list(state.settings.namespaces)
    if state.metrics is None:
        state.metrics = Metrics(state.settings.clock)
    if metrics_port:
        state.metrics.serve(metrics_port)
    if peering:
        state.act_after = time.monotonic() + PEERING_GRACE_SECONDS
    await kopf.operator(
        registry=build_registry(),
        settings=settings(peering=peering, priority=priority),
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
        peering_name=peering,
        standalone=peering is None,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        memo=memo,
    )


def run(
    namespaces: Sequence[str],
    liveness: str | None,
    peering: str | None,
    verbose: bool,
    quiet: bool,
    log_format: str,
    metrics_port: int | None = None,
    priority: int = 0,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> None:
    kopf.configure(verbose=verbose, quiet=quiet, log_format=kopf.LogFormat[log_format.upper()])
    if not verbose:
        # kopf logs every handler call at INFO; the site loops log what matters.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # pymodbus logs every Modbus frame at DEBUG: the meter's readings and errors are the
    # operator's to log, verbose or not.
    logging.getLogger("pymodbus").setLevel(logging.INFO)
    # The client's I/O thread must get the GIL quickly while kopf's loop is busy with a
    # burst of watch events: a 0.5 ms switch interval (default 5 ms) halves the time of a
    # 500-node curtail batch (bench/bench_operator.py).
    sys.setswitchinterval(0.0005)
    state = Operator(
        OperatorSettings(namespaces=tuple(namespaces), kubeconfig=kubeconfig, context=context)
    )
    asyncio.run(operate(state, liveness, peering, metrics_port=metrics_port, priority=priority))


class OperatorThread:
    """The operator in its own thread and event loop, as it would be in its own process
    (`dualcap demo`, embedding). ``start`` and ``stop`` block: call them from a thread
    (``asyncio.to_thread``) when an event loop is running."""

    def __init__(self, state: Operator):
        self.state = state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        ready = threading.Event()

        def target() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                asyncio.run(
                    operate(self.state, liveness=None, stop_flag=self._stop, ready_flag=ready)
                )

        self._thread = threading.Thread(target=target, name="dualcap-operator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"the operator did not start in {timeout:.0f}s")

    def stop(self, timeout: float = 20.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
