"""A randomized fault campaign: the real operator (a `dualcap run` process, so that a kill is
a kill) on the sandbox, driven through long random sequences of what goes wrong on real
sites, with the reliability invariants (README, Reliability) checked after every step and on every write.

The failure classes are those that found most bugs in real operators (Sieve, OSDI'22;
Acto, SOSP'23): stale or missing views of the cluster (dropped watches, 410 Gone and
re-lists, NotReady nodes whose status goes stale), crashes between a side effect and the
record of it (SIGKILL at random points, after the k-th write, ambiguous 500s), and
misoperation (limits cut below the leases, leases edited and deleted, nodes removed,
nodes cordoned by a person, API outages).

A sequence is generated from its seed as a list of concrete steps, so a failure replays
exactly (`--seed`), and is shrunk: steps are dropped one at a time while it still fails.

    python -m tests.campaign.campaign --sequences 20 --steps 30     # make soak
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from dualcap.api.common import LEASE_LABEL
from dualcap.api.marks import is_marked
from dualcap.planning import build_fleet, plan
from dualcap_sandbox.app import Sandbox
from dualcap_sandbox.cluster import Behaviour
from tests.operator.conftest import Monitor, cluster_objects, operator_process

ROOT = Path(__file__).resolve().parents[2]
SITE = "tx-rockdale-1"
API = "/apis/dualcap.io/v1alpha1"
PERSON = "kubectl/v1.30.0 (campaign; a person)"
SETTLE_SECONDS = 45.0
# Who is writing, in the request handler's task (the cluster's own writes run elsewhere).
WRITER: contextvars.ContextVar[str] = contextvars.ContextVar("writer", default="")

KINDS = (
    "limit", "event", "lease_create", "lease_edit", "lease_delete", "lease_end",
    "node_add", "node_remove", "node_down", "node_up", "person_cordon", "person_uncordon",
    "slow_miners", "faults", "ambiguous", "latency", "drop_watches", "watch_410", "outage",
    "kill", "crash_after_writes",
)  # fmt: skip
FAULT_KINDS = {"faults", "ambiguous", "latency", "drop_watches", "watch_410", "outage"}


@dataclass
class Step:
    kind: str
    args: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(f'{k}={v}' for k, v in self.args.items())})"


def generate(seed: int, steps: int) -> list[Step]:
    rng = random.Random(seed)
    out = []
    for i in range(steps):
        kind = rng.choice(KINDS)
        a: dict[str, Any] = {}
        if kind == "limit":
            a = {"kw": rng.choice([3_000, 8_000, 15_000, 25_000, 35_000, 50_000])}
        elif kind == "event":
            a = {"kw": rng.choice([None, 0, 500, 5_000, 12_000, 20_000])}
        elif kind == "lease_create":
            a = {
                "name": f"camp-{seed}-{i}",
                "ns": rng.choice(["acme", "research"]),
                "gpus": rng.choice([8, 16, 24, 32]),
                "priority": rng.randint(0, 120),
                "preemptible": rng.random() < 0.5,
                "start_in": rng.choice([0, 0, 2, 5]),
                "ends_in": rng.choice([None, None, 6, 12]),
            }
        elif kind in ("lease_edit", "lease_delete", "lease_end"):
            a = {"pick": rng.random(), "priority": rng.randint(0, 120), "gpus": rng.choice([8, 16, 32])}  # fmt: skip
        elif kind == "node_add":
            a = {"name": f"camp-asic-{seed}-{i}", "kw": rng.choice([950, 1650, 1900])}
        elif kind in ("node_remove", "node_down", "node_up", "person_cordon", "person_uncordon"):
            a = {"pick": rng.random()}
        elif kind == "slow_miners":
            a = {"seconds": rng.choice([0.05, 0.2, 0.8, 1.5])}
        elif kind == "faults":
            a = {"code": rng.choice([409, 429, 500]), "times": rng.randint(1, 6),
                 "what": rng.choice(["nodes", "pods", "status"])}  # fmt: skip
        elif kind == "ambiguous":
            a = {"times": rng.randint(1, 3), "what": rng.choice(["nodes", "pods"])}
        elif kind == "latency":
            a = {"seconds": rng.choice([0.1, 0.3, 0.6]), "times": rng.randint(5, 30)}
        elif kind == "outage":
            a = {"seconds": rng.choice([1.0, 2.0, 3.0])}
        elif kind == "kill":
            a = {"after": rng.choice([0.0, 0.1, 0.4, 1.0]), "down": rng.choice([0.0, 0.5, 1.5])}
        elif kind == "crash_after_writes":
            a = {"k": rng.randint(1, 8)}
        a["pause"] = rng.choice([0.1, 0.3, 0.6, 1.0])
        out.append(Step(kind, a))
    return out


@dataclass
class Stats:
    sequences: int = 0
    steps: int = 0
    faults: int = 0
    restarts: int = 0
    violations: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    writes: int = 0
    traffic: set[tuple[str, str, str]] = field(default_factory=set)  # (group, resource, verb)
    # the MinerAgent campaign (tests.campaign.miners): faults injected into the fake miners,
    # agents killed and restarted, samples of the true draw
    miner_faults: int = 0
    agent_kills: int = 0
    agent_restarts: int = 0
    samples: int = 0
    # the meter campaign (tests.campaign.meter): faults injected into the site meter
    meter_faults: int = 0

    def line(self) -> str:
        miners = (
            f", miner faults {self.miner_faults}, agents killed {self.agent_kills},"
            f" agent restarts {self.agent_restarts}, true-draw samples {self.samples}"
            if self.samples
            else ""
        )
        if self.meter_faults:
            miners += f", meter faults {self.meter_faults}"
        return (
            f"sequences {self.sequences}, steps {self.steps}, faults injected {self.faults},"
            f" operator restarts {self.restarts}, operator writes {self.writes}{miners},"
            f" violations {len(self.violations)}"
        )


class Operator:
    def __init__(self, kubeconfig: Path, log: Path):
        self.kubeconfig, self.log = kubeconfig, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.proc = operator_process(str(self.kubeconfig), self.log)
        self.starts += 1

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else -1


marked = is_marked


class Violations(list[str]):
    """Each violation says where in its sequence it was found (``at``: the step being
    taken, or the settling around the sequence), so a failure reads with its replay."""

    at = "set-up"

    def append(self, message: str) -> None:
        super().append(f"{message} [at {self.at}]")


class Run:
    """One sequence on a fresh sandbox."""

    def __init__(self, seed: int, steps: list[Step], stats: Stats, tmp: Path, verbose: bool):
        self.seed, self.steps, self.stats, self.tmp, self.verbose = seed, steps, stats, tmp, verbose
        self.violations = Violations()
        self.cordoned: set[str] = set()
        self.leases: list[tuple[str, str]] = []
        self.most_pods: dict[tuple[str, str], int] = {}  # the most pods each lease has owned
        self._over_since: float | None = None
        self._last: dict[str, tuple[float, float]] = {}

    # -- the invariants checked on every write (README, Reliability) ------------------------------
    def monitor(self, rt: Any = None, kind: str = "", obj: Any = None, old: Any = None) -> None:
        # The operator never writes a user's spec (its writes are status, kopf's metadata).
        if (
            rt is not None
            and rt.group == "dualcap.io"
            and old is not None
            and obj is not None
            and WRITER.get().startswith(("dualcap/", "kopf"))
            and obj.get("spec") != old.get("spec")
        ):
            self.violations.append(f"the operator changed the spec of {rt.kind} {obj['metadata']['name']}")  # fmt: skip
        self._monitor.check()
        while self._monitor.violations:
            self.violations.append("envelope: " + self._monitor.violations.pop())

    async def http(self, method: str, path: str, body: Any = None, ctype: str = "application/merge-patch+json") -> tuple[int, Any]:  # fmt: skip
        async with self.session.request(
            method, self.sb.url + path, data=None if body is None else json.dumps(body),
            headers={"Content-Type": ctype, "User-Agent": PERSON},
        ) as r:  # fmt: skip
            try:
                return r.status, await r.json()
            except Exception:
                return r.status, await r.text()

    def objects(self) -> list[dict[str, Any]]:
        """What the settled invariants read of the cluster."""
        return cluster_objects(self.sb)

    def asic_nodes(self) -> list[str]:
        rt = self.sb.store.rt("", "nodes")
        return sorted(
            n["metadata"]["name"]
            for n in self.sb.store.list_objects(rt)
            if (n["metadata"].get("labels") or {}).get("dualcap.io/role") == "asic"
        )

    def pick(self, items: list[Any], r: float) -> Any:
        return items[min(int(r * len(items)), len(items) - 1)] if items else None

    async def run(self) -> list[str]:
        from dualcap.manifests import load_objects

        self.sb = Sandbox(behaviour=Behaviour(pod_termination_seconds=0.2), bookmark_seconds=1.0)
        await self.sb.start()
        self.kubeconfig = self.sb.write_kubeconfig(self.tmp / f"kc-{self.seed}")
        self.sb.load_objects(load_objects(str(ROOT / "crds")))
        self.load()
        self._monitor = Monitor(self.sb, lambda: datetime.now(UTC), blame=lambda: WRITER.get().startswith(("dualcap/", "kopf")), objects=lambda _sb: self.objects())  # fmt: skip
        self.sb.api.audit.on_write.append(WRITER.set)
        self.sb.store.listeners.append(self.monitor)
        self.op = Operator(self.kubeconfig, self.tmp / f"operator-{self.seed}.log")
        self.session = aiohttp.ClientSession()
        self._crash_hook: Any = None
        try:
            await self.prepare()
            self.op.start()
            self.violations.at = "the first settle"
            await self.settled("the first settle")
            for i, step in enumerate(self.steps):
                self.violations.at = f"step {i} ({step})"
                if self.verbose:
                    print(f"  [{self.seed}:{i}] {step}", flush=True)
                await self.do(step)
                self.stats.steps += 1
                self.stats.kinds[step.kind] += 1
                await asyncio.sleep(step.args.get("pause", 0.5))
                if not self.op.alive() and step.kind not in ("kill", "crash_after_writes"):
                    self.violations.append(
                        f"the operator died at step {i} ({step}): see {self.op.log}"
                    )
                    self.op.start()
                self.safety(f"after step {i} ({step})")
            self.violations.at = "convergence after the sequence"
            await self.heal()
            await self.settled("convergence after the sequence")
            await self.converged()
        finally:
            self.stats.restarts += self.op.starts - 1
            self.stats.faults += self.sb.faults.injected
            self.stats.writes += sum(
                n
                for a, n in self.sb.api.audit.writers.items()
                if a.startswith(("dualcap/", "kopf"))
            )
            for (agent, verb, group, plural, sub, _ns), _n in self.sb.api.audit.by_agent.items():
                if agent in ("dualcap", "kopf"):
                    self.stats.traffic.add((group, f"{plural}/{sub}" if sub else plural, verb))
            self.op.kill()
            await self.cleanup()
            await self.session.close()
            await self.sb.stop()
            if self.violations and self.op.log.exists():  # it goes with the tmp dir: keep its end
                tail = self.op.log.read_text(errors="replace").splitlines()[-15:]
                self.violations.at = "the end"
                self.violations.append("operator log, last lines:\n    " + "\n    ".join(tail))
        return self.violations

    def load(self) -> None:
        """The site the sequence runs on: the examples'."""
        from dualcap.manifests import load_objects

        self.sb.load_objects(load_objects(str(ROOT / "examples")))

    async def prepare(self) -> None:
        # Hysteresis and ramp off: a campaign runs on the wall clock, seconds not hours.
        code, body = await self.http("PATCH", f"{API}/sites/{SITE}", {"spec": {"behavior": {
            "minMiningSeconds": 0, "minCurtailedSeconds": 0, "maxRampUpKWPerMinute": 1_000_000}}})  # fmt: skip
        assert code == 200, body
        code, body = await self.http("PATCH", f"{API}/powerbudgets/{SITE}", {"spec": {"events": None, "windows": None, "leadTimeSeconds": 0}})  # fmt: skip
        assert code == 200, body

    async def cleanup(self) -> None:
        """What the sequence started besides the operator and the sandbox."""

    # -- steps -------------------------------------------------------------------------
    async def do(self, step: Step) -> None:
        a, sb = step.args, self.sb
        now = datetime.now(UTC)
        ts = "%Y-%m-%dT%H:%M:%SZ"
        if step.kind == "limit":
            await self.http("PATCH", f"{API}/powerbudgets/{SITE}", {"spec": {"limitKW": a["kw"]}})
        elif step.kind == "event":
            events = None if a["kw"] is None else [{"name": "dr", "limitKW": a["kw"],
                "start": (now - timedelta(minutes=1)).strftime(ts), "end": (now + timedelta(hours=1)).strftime(ts)}]  # fmt: skip
            await self.http("PATCH", f"{API}/powerbudgets/{SITE}", {"spec": {"events": events}})
        elif step.kind == "lease_create":
            spec: dict[str, Any] = {
                "siteRef": SITE, "gpus": a["gpus"], "gpusPerPod": 8, "priority": a["priority"],
                "preemptible": a["preemptible"], "pricePerGPUHourUSD": 2.0,
                "start": (now + timedelta(seconds=a["start_in"])).strftime(ts),
                "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
            }  # fmt: skip
            if a["ends_in"]:
                spec["end"] = (now + timedelta(seconds=a["ends_in"])).strftime(ts)
            body = {"apiVersion": "dualcap.io/v1alpha1", "kind": "ComputeLease",
                    "metadata": {"name": a["name"], "namespace": a["ns"]}, "spec": spec}  # fmt: skip
            code, _ = await self.http("POST", f"{API}/namespaces/{a['ns']}/computeleases", body, "application/json")  # fmt: skip
            if code == 201:
                self.leases.append((a["ns"], a["name"]))
                self.most_pods[(a["ns"], a["name"])] = a["gpus"] // 8
        elif step.kind in ("lease_edit", "lease_delete", "lease_end"):
            target = self.pick(self.leases, a["pick"])
            if target is None:
                return
            ns, name = target
            path = f"{API}/namespaces/{ns}/computeleases/{name}"
            if step.kind == "lease_edit":
                await self.http(
                    "PATCH", path, {"spec": {"priority": a["priority"], "gpus": a["gpus"]}}
                )
            elif step.kind == "lease_end":
                await self.http("PATCH", path, {"spec": {"start": (now - timedelta(seconds=30)).strftime(ts), "end": (now - timedelta(seconds=1)).strftime(ts)}})  # fmt: skip
            else:
                await self.http("DELETE", path)
                self.leases.remove(target)
        elif step.kind == "node_add":
            node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": a["name"],
                    "labels": {"dualcap.io/site": SITE, "dualcap.io/role": "asic"},
                    "annotations": {"dualcap.io/power-kw": str(a["kw"])}},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}],
                               "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}  # fmt: skip
            await self.http("POST", "/api/v1/nodes", node, "application/json")
        elif step.kind == "node_remove":
            name = self.pick([n for n in self.asic_nodes() if n not in self.cordoned], a["pick"])
            if name:
                await self.http("DELETE", f"/api/v1/nodes/{name}")
        elif step.kind in ("node_down", "node_up"):
            name = self.pick(self.asic_nodes(), a["pick"])
            if name and sb.cluster is not None:
                sb.cluster.set_node_ready(name, step.kind == "node_up")
        elif step.kind == "person_cordon":
            rt = sb.store.rt("", "nodes")
            free = [n for n in self.asic_nodes() if n not in self.cordoned
                    and not marked(sb.store.get(rt, None, n) or {"metadata": {}})]  # fmt: skip
            name = self.pick(free, a["pick"])
            if name:
                code, _ = await self.http(
                    "PATCH", f"/api/v1/nodes/{name}", {"spec": {"unschedulable": True}}
                )
                if code == 200:
                    self.cordoned.add(name)
        elif step.kind == "person_uncordon":
            name = self.pick(sorted(self.cordoned), a["pick"])
            if name:
                await self.http("PATCH", f"/api/v1/nodes/{name}", {"spec": {"unschedulable": None}})
                self.cordoned.discard(name)
        elif step.kind == "slow_miners":
            sb.behaviour.pod_termination_seconds = a["seconds"]
        elif step.kind == "faults":
            path = {"nodes": r"^/api/v1/nodes/", "pods": r"^/api/v1/namespaces/[^/]+/pods",
                    "status": r"/status$"}[a["what"]]  # fmt: skip
            method = {"nodes": "PATCH", "pods": None, "status": "PATCH"}[a["what"]]
            sb.faults.add(method=method, path=path, code=a["code"], times=a["times"])
        elif step.kind == "ambiguous":
            path = r"^/api/v1/nodes/" if a["what"] == "nodes" else r"^/api/v1/namespaces/[^/]+/pods"
            sb.faults.add(method="PATCH" if a["what"] == "nodes" else "POST", path=path, code=500, ambiguous=True, times=a["times"])  # fmt: skip
        elif step.kind == "latency":
            sb.faults.add(path=r"^/api", code=0, latency_seconds=a["seconds"], times=a["times"])
        elif step.kind == "drop_watches":
            sb.store.close_watches()
        elif step.kind == "watch_410":
            sb.store.compact()
            sb.store.close_watches()
        elif step.kind == "outage":
            rule = sb.faults.add(path=r"^/(api|apis)(/|$)", code=503, times=-1)
            sb.faults.rules.insert(0, sb.faults.rules.pop())  # before any other rule
            # Requests already past the faults (sleeping in a latency rule of up to 0.6 s)
            # land first; on a loaded machine that can take well over the latency itself.
            await asyncio.sleep(2.0)
            writes = self.operator_writes()
            await asyncio.sleep(a["seconds"])
            sb.faults.rules.remove(rule)
            if self.operator_writes() != writes:
                self.violations.append("an operator write succeeded during the API outage")
        elif step.kind == "kill":
            await asyncio.sleep(a["after"])
            self.op.kill()
            await asyncio.sleep(a["down"])
            self.op.start()
        elif step.kind == "crash_after_writes":
            count = {"n": 0}
            pid = self.op.pid

            def hook(agent: str) -> None:
                if agent.startswith(("dualcap/", "kopf")):
                    count["n"] += 1
                    if count["n"] == a["k"]:
                        os.kill(pid, signal.SIGKILL)

            self.sb.api.audit.on_write.append(hook)
            # Something to write: a limit cut (or its undo).
            await self.http("PATCH", f"{API}/powerbudgets/{SITE}", {"spec": {"limitKW": random.Random(a["k"]).choice([12_000, 45_000])}})  # fmt: skip
            for _ in range(40):
                await asyncio.sleep(0.1)
                if not self.op.alive():
                    break
            self.sb.api.audit.on_write.remove(hook)
            if not self.op.alive():
                self.op.proc.wait(5)  # type: ignore[union-attr]
                self.op.start()

    def operator_writes(self) -> int:
        return sum(n for a, n in self.sb.api.audit.writers.items() if a.startswith(("dualcap/", "kopf")))  # fmt: skip

    # -- invariants ----------------------------------------------------------------------
    def safety(self, when: str) -> None:
        rt = self.sb.store.rt("", "nodes")
        for name in self.cordoned:
            node = self.sb.store.get(rt, None, name)
            if node is None:
                continue
            if not (node.get("spec") or {}).get("unschedulable"):
                self.violations.append(f"{when}: {name}, cordoned by a person, was uncordoned")
            if marked(node):
                self.violations.append(f"{when}: dualcap marked {name}, cordoned by a person")
        self.no_duplicate_pods(when)

    def no_duplicate_pods(self, when: str) -> None:
        pods = [p for p in self.sb.store.list_objects(self.sb.store.rt("", "pods"))
                if LEASE_LABEL in (p["metadata"].get("labels") or {})]  # fmt: skip
        leases = {(o["metadata"]["namespace"], o["metadata"]["name"]): o
                  for o in self.sb.store.list_objects(self.sb.store.rt("dualcap.io", "computeleases"))}  # fmt: skip
        live: Counter[tuple[str, str]] = Counter()
        for p in pods:
            if p["metadata"].get("deletionTimestamp"):
                continue
            live[(p["metadata"]["namespace"], p["metadata"]["labels"][LEASE_LABEL])] += 1
        for key, n in live.items():
            lease = leases.get(key)
            if lease is None:
                continue  # orphans are checked once settled
            spec = lease["spec"]
            # A lease just shrunk still has its old pods until the operator acts: the bound
            # is the most it has owned (the examples' leases: their spec).
            owned = max(spec["gpus"] // spec["gpusPerPod"], self.most_pods.get(key, 0))
            if n > owned:
                self.violations.append(f"{when}: lease {key} has {n} live pods, owns {owned}")

    async def heal(self) -> None:
        self.sb.faults.clear()
        self.sb.behaviour.pod_termination_seconds = 0.2
        if self.sb.cluster is not None:
            for name in list(self.sb.cluster.down_nodes):
                self.sb.cluster.set_node_ready(name, True)
        if not self.op.alive():
            self.op.start()

    async def settled(self, what: str) -> None:
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            objects = self.objects()
            site = next((o for o in objects if o.get("kind") == "Site"), None)
            status = (site or {}).get("status") or {}
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])  # fmt: skip
            observed = all(
                (o.get("status") or {}).get("observedGeneration") == o["metadata"].get("generation")
                for o in objects if o.get("kind") in ("Site", "PowerBudget", "ComputeLease")
            )  # fmt: skip
            p = plan(build_fleet(objects, now := datetime.now(UTC)).sites[SITE], now)
            if ready and observed and not p.schedule.now and not p.in_flight:
                return
            await asyncio.sleep(0.25)
        self.violations.append(
            f"{what}: the site did not settle in {SETTLE_SECONDS:.0f}s (see {self.op.log})"
        )

    async def converged(self) -> None:
        """Statuses become true to the cluster (eventually: a stale view is found by the
        operator's periodic resync); then the settled invariants must hold."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            before = len(self.violations)
            self.convergence()
            if len(self.violations) == before or time.monotonic() > deadline:
                return
            del self.violations[before:]
            await asyncio.sleep(0.5)

    def convergence(self) -> None:
        objects = self.objects()
        now = datetime.now(UTC)
        p = plan(build_fleet(objects, now).sites[SITE], now)
        mining = set(p.mining)
        for node in (o for o in objects if o.get("kind") == "Node"):
            name = node["metadata"]["name"]
            if marked(node) and name in mining:
                self.violations.append(
                    f"settled: {name} carries dualcap's marks but the plan wants it mining"
                )
        site = next(o for o in objects if o.get("kind") == "Site")
        counts = site["status"].get("controllers") or {}
        for state in ("mining", "curtailed", "held"):
            if counts.get(state, 0) != p.controllers.get(state, 0):
                self.violations.append(f"settled: Site status says {state} {counts.get(state)}, the cluster {p.controllers.get(state, 0)}")  # fmt: skip
        phases = {d.lease.key: d.phase for d in p.leases}
        pods = Counter(
            (o["metadata"]["namespace"], o["metadata"]["labels"][LEASE_LABEL])
            for o in objects
            if o.get("kind") == "Pod" and LEASE_LABEL in (o["metadata"].get("labels") or {})
            and not o["metadata"].get("deletionTimestamp")
        )  # fmt: skip
        for o in objects:
            if o.get("kind") != "ComputeLease":
                continue
            key = (o["metadata"]["namespace"], o["metadata"]["name"])
            got = (o.get("status") or {}).get("phase")
            if key in phases and got != phases[key]:
                self.violations.append(f"settled: lease {key} status {got}, the cluster says {phases[key]}")  # fmt: skip
            if got == "Running" and pods[key] != o["spec"]["gpus"] // o["spec"]["gpusPerPod"]:
                self.violations.append(f"settled: lease {key} Running with {pods[key]} pods")
        lease_keys = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o.get("kind") == "ComputeLease"}  # fmt: skip
        for key, n in pods.items():
            if key not in lease_keys:
                self.violations.append(f"settled: {n} orphaned pods of deleted lease {key}")
        # Above the limit once settled only when nothing controllable is left: every
        # controller curtailed (or held by a person, or NotReady) and no preemptible lease
        # running; the fixed load, idle GPU nodes and guaranteed leases are not shed.
        limit = p.limit_kw or 0.0
        snap = build_fleet(objects, now).sites[SITE]
        dispatchable_mining = [
            c.name for c in snap.controllers if c.dispatchable and c.name in mining
        ]
        preemptible_running = [
            d.lease.key
            for d in p.leases
            if d.runs and d.lease.spec is not None and d.lease.spec.preemptible
        ]
        if p.committed_kw > limit + 1e-6 and (dispatchable_mining or preemptible_running):
            self.violations.append(
                f"settled: committed {p.committed_kw:,.0f} kW above the limit {limit:,.0f} kW"
                f" with {len(dispatchable_mining)} controllers mining and {len(preemptible_running)} preemptible leases running"
            )
        self.safety("settled")


MODES = ("eviction", "miners", "meter")


def run_class(mode: str) -> type[Run]:
    if mode == "miners":
        from tests.campaign.miners import MinerRun

        return MinerRun
    if mode == "meter":
        from tests.campaign.meter import MeterRun

        return MeterRun
    return Run


def generate_for(mode: str, seed: int, steps: int) -> list[Step]:
    if mode == "miners":
        from tests.campaign.miners import generate as generate_miners

        return generate_miners(seed, steps)
    if mode == "meter":
        from tests.campaign.meter import generate as generate_meter

        return generate_meter(seed, steps)
    return generate(seed, steps)


async def run_sequence(seed: int, steps: list[Step], stats: Stats, tmp: Path, verbose: bool, mode: str = "eviction") -> list[str]:  # fmt: skip
    return await run_class(mode)(seed, steps, stats, tmp, verbose).run()


async def shrink(seed: int, steps: list[Step], tmp: Path, budget: int = 8, mode: str = "eviction") -> list[Step]:  # fmt: skip
    """Greedy: drop each step in turn while the sequence still fails (at most ``budget`` replays)."""
    current = list(steps)
    i = 0
    while i < len(current) and budget > 0:
        candidate = current[:i] + current[i + 1 :]
        budget -= 1
        if await run_sequence(seed, candidate, Stats(), tmp, False, mode):
            current = candidate
        else:
            i += 1
    return current


async def campaign(sequences: int, steps: int, first_seed: int = 1, verbose: bool = False, shrink_failures: bool = True, mode: str = "eviction") -> Stats:  # fmt: skip
    """``mode``: "eviction" (the examples' site, curtailment Eviction), "miners" (a site
    with curtailment MinerAgent, fake LuxOS miners and their agents: tests.campaign.miners)
    or "meter" (the same with a SunSpec site meter and its faults: tests.campaign.meter)."""
    stats = Stats()
    with tempfile.TemporaryDirectory(prefix="dualcap-campaign-") as tmp_name:
        tmp = Path(tmp_name)
        for seed in range(first_seed, first_seed + sequences):
            plan_steps = generate_for(mode, seed, steps)
            if verbose:
                print(f"sequence seed={seed}", flush=True)
            violations = await run_sequence(seed, plan_steps, stats, tmp, verbose, mode)
            stats.sequences += 1
            if violations:
                minimal = await shrink(seed, plan_steps, tmp, mode=mode) if shrink_failures else plan_steps  # fmt: skip
                stats.violations += [f"seed {seed}: {v}" for v in violations]
                stats.violations.append(
                    f"seed {seed}: replay with `python -m tests.campaign.campaign --mode {mode}"
                    f" --seed {seed} --sequences 1 --steps {steps} --verbose`"
                )
                stats.violations.append(
                    f"seed {seed}: shrunk to {len(minimal)} steps: " + "; ".join(map(str, minimal))
                )
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=20)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1, help="the first sequence's seed")
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=os.environ.get("DUALCAP_CAMPAIGN_MODE", "eviction"),
        help="eviction: the examples' site; miners: curtailment MinerAgent, fake miners,"
        " agents; meter: the same with a SunSpec site meter, an unmodelled load, meter faults",
    )
    parser.add_argument("--no-shrink", action="store_true", help="report failures unshrunk")
    args = parser.parse_args(argv)
    started = time.monotonic()
    stats = asyncio.run(campaign(args.sequences, args.steps, args.seed, args.verbose, not args.no_shrink, args.mode))  # fmt: skip
    print(f"campaign ({args.mode}): {stats.line()} ({time.monotonic() - started:.0f} s)")
    print("steps by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(stats.kinds.items())))
    for v in stats.violations:
        print("VIOLATION " + v)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "sequences": stats.sequences, "steps": stats.steps, "faults": stats.faults,
            "restarts": stats.restarts, "writes": stats.writes, "violations": stats.violations,
            "kinds": dict(stats.kinds), "mode": args.mode, "minerFaults": stats.miner_faults,
            "agentKills": stats.agent_kills, "agentRestarts": stats.agent_restarts,
            "samples": stats.samples, "meterFaults": stats.meter_faults}, indent=2))  # fmt: skip
    return 1 if stats.violations else 0


if __name__ == "__main__":
    sys.exit(main())
