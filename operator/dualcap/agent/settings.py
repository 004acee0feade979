"""How an agent runs: its settings, fixed for its life (the command line's, or a test's)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

FAST = 0.5  # seconds between looks while commands are taking effect
TRANSITION_SECONDS = 60.0  # how long after a command a miner may take to settle


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AgentSettings:
    """``interval``: how often the agent looks at its Node and its miners, re-sends a
    command not yet heeded and reports; ``fast``: how often it looks while commands are
    taking effect, for at most ``transition_seconds`` after the last one; ``overlap_seconds``:
    how often it looks for miners another node names too; ``events_namespace``: where its
    Events go.

    ``clock`` stamps what the agent writes (the reports' observedAt, conditions, Events):
    the operator judges a report's age on its own clock, which is the wall clock unless it
    runs on another (a simulated site). ``interval`` and ``fast`` are wall-clock seconds."""

    interval: float = 10.0
    overlap_seconds: float = 60.0
    transition_seconds: float = TRANSITION_SECONDS
    events_namespace: str = "default"
    fast: float = FAST
    clock: Callable[[], datetime] = wall_clock
