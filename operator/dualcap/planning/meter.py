"""The site meter's rules between plans, pure: what a reconcile remembers of the meter and
the model, and what the next plan's ``MeterState`` is made of. The operator keeps a
``MeterMemory`` per site and hands it back; nothing here reads a clock.

- A reading is compared with the highest model since a poll before it was taken
  (``modelled_then_kw``): a curtailment the meter has not seen yet is no unmodelled load.
- The unmodelled load counted falls only once the readings of a whole
  ``staleAfterSeconds`` show less (``recent_unmodelled_kw``): a reading taken while the
  model is above the truth (a resumed block counted at nameplate while it ramps) does not
  erase it.
- The reserve (the unmodelled load last counted, kept in the Site's status) counts while
  the meter is stale. When the meter comes back after a silence (no reading remembered
  within ``staleAfterSeconds`` of the new one) the reserve counts as that reading's own
  unmodelled load: it too falls only once a whole ``staleAfterSeconds`` of fresh readings
  show less, so one reading after a silence - taken while a block still ramps - cannot
  drop it.
- ``disagreeing_since``: when the meter and the model began to differ by more than the
  tolerance; the condition turns False once that has lasted ``disagreementSeconds``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from dualcap.planning.entities import MeterState

MODELLED_KEPT = timedelta(minutes=5)  # plans remembered (a reading is never older)
READINGS_KEPT = timedelta(minutes=5)  # readings remembered, at least


@dataclass(frozen=True, slots=True)
class MeterMemory:
    """What one site's reconciles remember of its meter, as data."""

    modelled: tuple[tuple[datetime, float], ...] = ()  # (when planned, modelled kW)
    unmodelled: tuple[tuple[datetime, float], ...] = ()  # (when read, its unmodelled kW)
    disagreeing_since: datetime | None = None


def prepared(state: MeterState, memory: MeterMemory, reserve_kw: float) -> MeterState:
    """The meter state the plan reads: the poller's ``state`` with the reserve kept in the
    Site's status and what ``memory`` holds."""
    state = replace(
        state,
        reserve_kw=max(0.0, reserve_kw),
        disagreeing_since=memory.disagreeing_since,
    )
    at = state.metered_at
    if at is None:
        return state
    since = at - timedelta(seconds=state.poll_seconds)
    window_start = at - timedelta(seconds=state.stale_after_seconds)
    recent = [kw for when, kw in memory.unmodelled if when >= window_start]
    if state.reserve_kw > 0 and _silent_before(memory.unmodelled, at, state.stale_after_seconds):
        recent.append(state.reserve_kw)  # back after a silence: the reserve is a reading
    return replace(
        state,
        modelled_then_kw=max((kw for when, kw in memory.modelled if when >= since), default=0.0),
        recent_unmodelled_kw=max(recent, default=0.0),
    )


def remembered(
    memory: MeterMemory,
    now: datetime,
    modelled_kw: float,
    state: MeterState,
    fresh: bool,
    measured_unmodelled_kw: float,
    disagreeing_since: datetime | None,
) -> MeterMemory:
    """``memory`` after a plan at ``now`` that modelled ``modelled_kw`` and read ``state``
    (``fresh``: its reading counted; ``measured_unmodelled_kw``: that reading's own
    unmodelled load)."""
    modelled = [(at, kw) for at, kw in memory.modelled if now - at <= MODELLED_KEPT]
    modelled.append((now, modelled_kw))
    seen = list(memory.unmodelled)
    read_at = state.metered_at
    if fresh and read_at is not None:
        if state.reserve_kw > 0 and _silent_before(seen, read_at, state.stale_after_seconds):
            # back after a silence: the reserve counts as this reading's own
            measured_unmodelled_kw = max(measured_unmodelled_kw, state.reserve_kw)
        if not seen or seen[-1][0] < read_at:
            seen.append((read_at, measured_unmodelled_kw))
        elif seen[-1][0] == read_at:  # the same reading against a newer model: the higher
            seen[-1] = (read_at, max(seen[-1][1], measured_unmodelled_kw))
    keep = max(READINGS_KEPT, timedelta(seconds=state.stale_after_seconds))
    seen = [(at, kw) for at, kw in seen if now - at <= keep]
    return MeterMemory(tuple(modelled), tuple(seen), disagreeing_since)


def _silent_before(
    seen: tuple[tuple[datetime, float], ...] | list[tuple[datetime, float]],
    read_at: datetime,
    stale_after_seconds: float,
) -> bool:
    """No reading remembered in the staleAfterSeconds before ``read_at``."""
    start = read_at - timedelta(seconds=stale_after_seconds)
    return not any(start <= when < read_at for when, _ in seen)
