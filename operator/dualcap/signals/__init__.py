"""Measurements from outside the cluster: the site's revenue meter and the GPUs' telemetry.

Each client turns one poll into a ``Reading`` (watts, and when it was read) or raises an
error with a stable ``reason`` a condition can carry. What the operator makes of a reading
(the closed loop, staleness, the reserve kept when the meter goes quiet) is decided above.
"""

from __future__ import annotations

from dualcap.signals.reading import Reading, SignalError

__all__ = ["Reading", "SignalError"]
