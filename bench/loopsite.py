"""The example site for the end-to-end loop benchmarks (bench_unmodelled, bench_price,
bench_dr_envelope): the sandbox in the benchmark's process, the real operator (`dualcap
run`) in its own, and the site's draw as the model has it with every marked block off.

The site is examples/ (25 ASIC blocks, 8 GPU servers, three leases) on the wall clock, with
its PowerBudget reduced to a flat limit and a flat energy price (the example's afternoon
price window would stop all mining during the run) and no minimum mining or curtailed time
(so a benchmark can repeat).

The draw a benchmark judges by is the physical one: the model's draw (dualcap's own
accounting of the cluster as it is) with a block counted asleep from the moment the
operator marks it, not when its curtailment is confirmed. With curtailment Eviction a
block stops when its miners are evicted, which its mark starts.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dualcap.api.site import ControllerState  # noqa: E402
from dualcap.manifests import load_objects  # noqa: E402
from dualcap.planning import build_fleet  # noqa: E402
from dualcap.planning.accounting import committed, gpu_baseline_it_kw  # noqa: E402
from dualcap.planning.plan import site_envelope  # noqa: E402
from dualcap_sandbox.app import Sandbox  # noqa: E402
from dualcap_sandbox.cluster import Behaviour  # noqa: E402

SITE = "tx-rockdale-1"
KINDS = ("Site", "PowerBudget", "ComputeLease", "Node", "Pod")


def site_objects(limit_kw: float, usd_per_mwh: float = 28.0) -> list[dict[str, Any]]:
    """examples/ with a flat budget and no minimum times."""
    objects = load_objects(str(ROOT / "examples"))
    for obj in objects:
        if obj.get("kind") == "Site":
            behavior = obj["spec"]["behavior"]
            behavior["minMiningSeconds"] = 0
            behavior["minCurtailedSeconds"] = 0
            behavior["maxRampUpKWPerMinute"] = 1_000_000
        elif obj.get("kind") == "PowerBudget":
            obj["spec"] = {
                "siteRef": SITE,
                "limitKW": limit_kw,
                "safetyMarginKW": 500,
                "energyPrice": {"usdPerMWh": usd_per_mwh},
            }
    return objects


async def start_sandbox(tmp: Path, objects: list[dict[str, Any]]) -> tuple[Sandbox, Path]:
    sb = Sandbox(behaviour=Behaviour(pod_termination_seconds=0.2))
    await sb.start()
    kubeconfig = sb.write_kubeconfig(tmp / "kubeconfig")
    sb.load_objects(load_objects(str(ROOT / "crds")))
    sb.load_objects(objects)
    return sb, kubeconfig


def operator_process(kubeconfig: Path, log: Path, *command: str) -> subprocess.Popen[bytes]:
    """``dualcap <command>`` as its own process (as in its pod), its output in ``log``."""
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dualcap", *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def run_operator(kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    return operator_process(
        kubeconfig, log, "run", "--liveness", "none", "--metrics-port", "0", "--log-format", "plain"
    )


def stop_process(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        print(f"  ({proc.args[3]} did not stop in 20 s: killed; its log: {log})")


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    draw_kw: float  # physical: marked blocks off, plus the load nobody modelled
    limit_kw: float  # the composed envelope's limit now
    marked: frozenset[str]  # blocks the operator has marked


@dataclass
class SiteWatch:
    """The site's physical draw after every write to the sandbox (a store listener).

    ``unmodelled_kw`` is added to the draw; ``on_sample`` sees each new sample (the meter
    follows the draw with it)."""

    sb: Sandbox
    unmodelled_kw: float = 0.0
    on_sample: Callable[[Sample], None] | None = None
    samples: list[Sample] = field(default_factory=list)
    last: Sample | None = None

    def start(self) -> SiteWatch:
        self.sb.store.listeners.append(self._on_write)
        self.sample()
        return self

    def _on_write(self, rt: Any, *_: Any) -> None:
        if rt.kind in ("Node", "Pod", "PowerBudget", "Site"):
            self.sample()

    def sample(self) -> Sample:
        objects = [
            o
            for rt in self.sb.store.types()
            if rt.kind in KINDS
            for o in self.sb.store.list_objects(rt)
        ]
        now = datetime.now(UTC)
        snap = build_fleet(objects, now).sites[SITE]
        envelope = site_envelope(snap, now)
        assert envelope is not None, "the site has no budget"
        draw = committed(snap, gpu_baseline_it_kw(snap.gpu_nodes.values())).total_kw
        stopping = [c for c in snap.controllers if c.state is ControllerState.CURTAILING]
        draw -= snap.pue * sum(c.committed_it_kw - c.asleep_kw for c in stopping)
        marked = frozenset(
            c.name
            for c in snap.controllers
            if c.state in (ControllerState.CURTAILING, ControllerState.CURTAILED)
        )
        sample = Sample(
            time.monotonic(), draw + self.unmodelled_kw, envelope.envelope.limit_kw, marked
        )
        self.last = sample
        self.samples.append(sample)
        del self.samples[:-10_000]
        if self.on_sample is not None:
            self.on_sample(sample)
        return sample

    async def inside_to_stay(
        self, since: float, hold: float, timeout: float
    ) -> tuple[Runs | None, bool]:
        """Once the site has been inside its limit for ``hold`` seconds, judged on the
        samples taken at or after ``since``; at most ``timeout`` seconds. None: never
        inside; the flag says whether it stayed."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            runs = runs_inside([s for s in self.samples if s.at >= since], now)
            if (
                runs is not None
                and runs.stays_inside is not None
                and now - runs.stays_inside >= hold
            ):
                return runs, True
            if now > deadline:
                return runs, False
            await asyncio.sleep(0.1)

    def first_since(self, since: float, ok: Callable[[Sample], bool]) -> Sample | None:
        return next((s for s in self.samples if s.at >= since and ok(s)), None)

    async def until(
        self, since: float, ok: Callable[[Sample], bool], timeout: float, what: str
    ) -> Sample:
        """The first sample at or after ``since`` that is ``ok``, waiting at most ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.first_since(since, ok)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise SystemExit(f"not seen in {timeout:g} s: {what} (last: {self.last})")
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Runs:
    first_inside: float  # the first sample inside the limit
    stays_inside: float | None  # the start of the run inside now (None: outside now)
    excursions: int  # times back above the limit after first_inside
    outside_after_first_seconds: float  # how long above it, after first_inside


def runs_inside(samples: list[Sample], until: float) -> Runs | None:
    """Inside and outside the limit over ``samples`` (each holds until the next)."""
    first = stay = None
    excursions, outside = 0, 0.0
    for s, nxt in zip(samples, [*samples[1:], None], strict=True):
        end = nxt.at if nxt is not None else until
        if s.draw_kw <= s.limit_kw:
            if first is None:
                first = s.at
            if stay is None:
                stay = s.at
        else:
            if stay is not None and first is not None:
                excursions += 1
            stay = None
            if first is not None:
                outside += end - s.at
    if first is None:
        return None
    return Runs(first, stay, excursions, outside)


def site_status(sb: Sandbox) -> dict[str, Any]:
    obj = sb.store.get(sb.store.rt("dualcap.io", "sites"), None, SITE) or {}
    return dict(obj.get("status") or {})


async def settled(
    sb: Sandbox, timeout: float, also: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Until the Site is Ready at its generation and ``also`` holds of its status."""
    deadline = time.monotonic() + timeout
    rt = sb.store.rt("dualcap.io", "sites")
    while True:
        obj = sb.store.get(rt, None, SITE) or {}
        status = obj.get("status") or {}
        ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
        if (
            ready
            and ready[0]["status"] == "True"
            and status.get("observedGeneration") == obj["metadata"]["generation"]
            and also(status)
        ):
            return dict(status)
        if time.monotonic() > deadline:
            raise SystemExit(f"the site did not settle in {timeout:g} s: {status}")
        await asyncio.sleep(0.1)


def median_max(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<48} none"
    ordered = sorted(values)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return f"  {label:<48} median {median:6.2f} s   max {max(values):6.2f} s   (n={n})"
