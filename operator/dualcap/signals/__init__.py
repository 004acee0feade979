"""Signals from outside the cluster: the site's revenue meter and the GPUs' telemetry,
demand-response dispatches, energy prices and hashprice.

Each client turns one poll into a reading (a value, and when it was observed) or raises a
``SignalError`` with a stable ``reason`` a condition can carry. What the operator makes of
a reading (the closed loop, staleness, the fallbacks) is decided above.
"""

from __future__ import annotations

from dualcap.signals.reading import Reading, SignalError

__all__ = ["Reading", "SignalError"]
