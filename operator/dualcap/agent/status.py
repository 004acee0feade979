"""What a block's MinerBlock says, from what its agent knows and its miners measure: the
summary, what is wrong (a reason and a message each: the conditions' and the Events'),
the conditions wanted and the status. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dualcap.agent.miners import CONTESTED, Desired, Reading
from dualcap.agent.node import NodeView
from dualcap.api.names import (
    COMMAND_FAILED,
    CONTESTED_MINERS,
    CONVERGED,
    CONVERGING,
    INVALID_MINERS,
    MINERS_ANNOTATION,
    MINERS_UNREACHABLE,
    NO_MINERS,
    NODE_UNAVAILABLE,
)
from dualcap.api.objects import Wanted, rfc3339


def _list(items: list[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


@dataclass
class Summary:
    miners: int
    mining: int
    sleeping: int
    unreachable: int
    power_kw: float
    hashrate_ths: float

    @classmethod
    def of(cls, readings: list[Reading]) -> Summary:
        return cls(
            miners=len(readings),
            mining=sum(r.state == "mining" for r in readings),
            sleeping=sum(r.state == "sleeping" for r in readings),
            unreachable=sum(r.state == "unreachable" for r in readings),
            power_kw=round(sum(r.watts or 0.0 for r in readings) / 1000.0, 3),
            hashrate_ths=round(sum(r.ths or 0.0 for r in readings), 1),
        )


def problems(node: NodeView, readings: list[Reading]) -> dict[str, str]:
    """Reason -> message for what is wrong with the block now."""
    out: dict[str, str] = {}
    if node.annotation is None or not node.annotation.strip():
        out[NO_MINERS] = f"node {node.name} has no {MINERS_ANNOTATION} annotation"
    elif node.parsed.errors:
        kept = f"; driving the last valid {len(node.addresses)} miners"
        out[INVALID_MINERS] = f"{MINERS_ANNOTATION}: " + "; ".join(node.parsed.errors)
        if node.parsed.too_many:
            out[INVALID_MINERS] += kept
    contested = sorted(ip for ip in node.contested if ip in set(node.addresses))
    if contested:
        pairs = [f"{ip} (also {node.contested[ip]})" for ip in contested]
        out[CONTESTED_MINERS] = (
            f"{len(contested)} miners are named by another node too, and left alone: "
            + _list(pairs)
        )
    down = [r for r in readings if r.state == "unreachable" and r.problem != CONTESTED]
    if down:
        out[MINERS_UNREACHABLE] = f"{len(down)} miners unreachable: " + _list(
            [f"{r.ip} ({r.problem})" for r in down]
        )
    refused = [r for r in readings if r.state != "unreachable" and r.problem]
    if refused:
        out[COMMAND_FAILED] = f"{len(refused)} miners did not take a command: " + _list(
            [f"{r.ip} ({r.problem})" for r in refused]
        )
    if not node.visible:
        out[NODE_UNAVAILABLE] = (
            f"cannot see node {node.name}: keeping the last desired state "
            f"({node.desired or 'none'}), waking no miner"
        )
    return out


def conditions(
    readings: list[Reading], problems: dict[str, str], desired: Desired | None
) -> list[Wanted]:
    """Ready, Reconciling and Stalled, as ``api.objects.set_conditions`` takes them."""
    off_target = [
        r for r in readings if r.state != "unreachable" and (r.sleeping != (desired == "sleep"))
    ]
    stalled = next((r for r in (NO_MINERS, INVALID_MINERS) if r in problems), None)
    converging = bool(off_target) and desired is not None
    ready_reason = next(
        (r for r in (NODE_UNAVAILABLE, INVALID_MINERS, NO_MINERS, COMMAND_FAILED) if r in problems),
        None,
    )
    if ready_reason is None and converging:
        ready_reason = CONVERGING
    if ready_reason is None and (MINERS_UNREACHABLE in problems or CONTESTED_MINERS in problems):
        ready_reason = MINERS_UNREACHABLE if MINERS_UNREACHABLE in problems else CONTESTED_MINERS
    want = {"sleep": "asleep", "mine": "mining", None: "unknown"}[desired]
    ready: Wanted
    if ready_reason is None:
        ready = ("Ready", True, CONVERGED, f"all {len(readings)} miners {want}")
    elif ready_reason == CONVERGING:
        ready = ("Ready", False, CONVERGING, f"{len(off_target)} miners not yet {want}")
    else:
        ready = ("Ready", False, ready_reason, problems[ready_reason])
    return [
        ready,
        (
            "Reconciling",
            converging,
            CONVERGING if converging else CONVERGED,
            f"{len(off_target)} miners not yet {want}" if converging else "",
        ),
        ("Stalled", stalled is not None, stalled or CONVERGED, problems.get(stalled or "", "")),
    ]


def block_status(
    summary: Summary, conditions: list[dict[str, Any]], at: datetime, generation: int | None
) -> dict[str, Any]:
    """The MinerBlock's status, observed ``at``, of its spec at ``generation``."""
    out: dict[str, Any] = {
        "miners": summary.miners,
        "mining": summary.mining,
        "sleeping": summary.sleeping,
        "unreachable": summary.unreachable,
        "powerKW": summary.power_kw,
        "hashrateTHs": summary.hashrate_ths,
        "observedAt": rfc3339(at, micro=True),
        "observedGeneration": generation,
        "conditions": conditions,
    }
    if generation is None:
        del out["observedGeneration"]
    return out
