"""The campaign with curtailment MinerAgent: the real operator (a process), a real agent per
ASIC controller (in-process tasks, killed and restarted as steps) and a block of fake LuxOS
miners per controller (dualcap_sandbox.luxos, driven by the real pyasic-rs), through random
sequences of budget changes, leases, operator kills and what goes wrong with miners: a
miner unreachable, silent, refusing commands, rebooting into mining during a curtailment,
reporting "mining" while asleep; an agent killed, an agent restarted.

Besides the campaign's invariants (the operator's model of the draw, checked on every
write, with the MinerBlocks counted), the envelope is checked on the fakes themselves: see
`MinerRun.true_draw`. Its grace periods are defined from the constants below.

    python -m tests.campaign.campaign --mode miners --sequences 5 --steps 30
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dualcap.agent.agent import Agent
from dualcap.agent.credentials import Credentials
from dualcap.agent.kube import Kube, load_connection
from dualcap.agent.miners import Driver
from dualcap.agent.settings import AgentSettings
from dualcap.api.marks import is_marked
from dualcap.api.minerblock import MINERS_ANNOTATION
from dualcap.planning import build_fleet
from dualcap.planning.plan import site_envelope
from dualcap_sandbox.luxos import FakeFleet, FakeMiner
from tests.campaign.campaign import SITE, WRITER, Run, Step

CONTROLLERS = 5
PER_BLOCK = 3
NAMEPLATE_KW = 10.5  # per controller: 3 fakes of 3.25 kW (±1 % as measured), a little above
PUE = 1.08
FIXED_KW = 5.0
SLEEP_SECONDS = 1.0  # the fakes' firmware: falling asleep ...
WAKE_SECONDS = 2.0  # ... and waking
INTERVAL = 1.0  # the agents' interval
MINER_TIMEOUT = 2.0  # the agents' bound on one call to a miner
STALE_SECONDS = 5  # the Site's staleAfterSeconds
# The slack on top of the firmware's and the agent's own time: one identification of a
# miner that does not answer (asic-rs's timeout plus the agent's margin on it) delays the
# agent's cycle by that much, and a loaded 2-core machine schedules a second late.
SLACK = 2 * MINER_TIMEOUT + 1.0
# After a curtail command (a node marked): its miners fall asleep within this.
CURTAIL_GRACE = SLEEP_SECONDS + INTERVAL + SLACK
# A miner that reboots into mining while its node is curtailed is put back to sleep (the
# agent's next look re-sends sleep) and has fallen asleep within this.
REBOOT_GRACE = INTERVAL + SLEEP_SECONDS + SLACK
# A miner healed of a fault (reachable again, answering, taking commands) or whose agent
# was restarted: identified again (at most once per interval), commanded, asleep.
HEAL_GRACE = 2 * INTERVAL + SLEEP_SECONDS + SLACK
# The operator's own reaction to what it reads (a budget cut, a report): a reconcile.
REACT_SECONDS = 3.0
# A fault that keeps miners mining is known to the operator within a report (an interval,
# or staleAfterSeconds for an agent that stopped writing), and shed elsewhere within a
# reaction and the firmware's time of the blocks it curtails instead.
DETECT_SECONDS = STALE_SECONDS + INTERVAL + SLACK + REACT_SECONDS + CURTAIL_GRACE
# The fakes' draw as their firmware reports it varies by ±1 %: the operator counts
# measured power, so the truth may exceed its count by that much.
NOISE = 0.02
SAMPLE_SECONDS = 0.2

KINDS = (
    "limit", "limit", "limit", "event", "lease_create", "lease_delete", "lease_end", "kill",
    "drop_watches", "miner_unreachable", "miner_silent", "miner_refuse", "miner_reboot",
    "miner_reboot", "miner_flag", "miner_heal", "agent_kill", "agent_restart",
)  # fmt: skip
MINER_FAULT_KINDS = {"miner_unreachable", "miner_silent", "miner_refuse", "miner_reboot", "miner_flag"}  # fmt: skip


def generate(seed: int, steps: int) -> list[Step]:
    rng = random.Random(seed)
    out = []
    for i in range(steps):
        kind = rng.choice(KINDS)
        a: dict[str, Any] = {}
        if kind == "limit":
            a = {"kw": rng.choice([15, 25, 35, 45, 60, 90])}
        elif kind == "event":
            a = {"kw": rng.choice([None, None, 10, 20, 30])}
        elif kind == "lease_create":
            a = {
                "name": f"camp-{seed}-{i}",
                "ns": rng.choice(["acme", "research"]),
                "gpus": rng.choice([8, 8, 16]),
                "priority": rng.randint(0, 120),
                "preemptible": rng.random() < 0.5,
                "start_in": rng.choice([0, 0, 2]),
                "ends_in": rng.choice([None, None, 8]),
            }
        elif kind in ("lease_delete", "lease_end"):
            a = {"pick": rng.random()}
        elif kind == "kill":
            a = {"after": rng.choice([0.0, 0.2, 1.0]), "down": rng.choice([0.0, 0.5, 1.5])}
        elif kind in ("miner_unreachable", "miner_silent", "miner_refuse", "miner_flag"):
            a = {"block": rng.randrange(CONTROLLERS), "miner": rng.randrange(PER_BLOCK)}
        elif kind == "miner_reboot":
            # during a curtailment when there is one (the block is picked among the marked)
            a = {"pick": rng.random(), "miners": rng.randint(1, PER_BLOCK)}
        elif kind in ("miner_heal", "agent_kill", "agent_restart"):
            a = {"pick": rng.random()}
        a["pause"] = rng.choice([0.3, 0.6, 1.0, 2.0])
        out.append(Step(kind, a))
    return out


def site_objects() -> list[dict[str, Any]]:
    site = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "Site",
        "metadata": {"name": SITE},
        "spec": {
            "nodeSelector": {"matchLabels": {"dualcap.io/site": SITE}},
            "facility": {"pue": PUE, "fixedKW": FIXED_KW},
            "asic": {
                "nodeSelector": {"matchLabels": {"dualcap.io/role": "asic"}},
                "curtailment": "MinerAgent",
                "staleAfterSeconds": STALE_SECONDS,
                "powerKW": NAMEPLATE_KW,
                "hashrateTHs": 360,
                "hashpriceUSDPerPHDay": 50,
            },
            "gpu": {
                "nodeSelector": {"matchLabels": {"dualcap.io/role": "gpu"}},
                "resourceName": "nvidia.com/gpu",
                "powerPerGPUKW": 1.1,
                "idlePowerKW": 1.2,
            },
            # Hysteresis and ramp off: a campaign runs on the wall clock, seconds not hours.
            "behavior": {
                "minMiningSeconds": 0,
                "minCurtailedSeconds": 0,
                "maxRampUpKWPerMinute": 1_000_000,
            },
        },
    }
    budget = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "PowerBudget",
        "metadata": {"name": SITE},
        "spec": {"siteRef": SITE, "limitKW": 90, "leadTimeSeconds": 0},
    }
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        for ns in ("acme", "research")
    ]
    gpus = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"gpu-{i}",
                "labels": {"dualcap.io/site": SITE, "dualcap.io/role": "gpu"},
            },
            "status": {
                "capacity": {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"},
                "allocatable": {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
        for i in (1, 2)
    ]  # fmt: skip
    return [*namespaces, site, budget, *gpus]


def controller(name: str, miners: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"dualcap.io/site": SITE, "dualcap.io/role": "asic"},
            "annotations": {MINERS_ANNOTATION: miners},
        },
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def open_fleet(seed: int) -> FakeFleet:
    """The sequence's fakes on a 127.x range of its own (below FakeFleet's random default
    range, so that the agent tests of another session do not take the same addresses)."""
    for attempt in range(40):
        n = seed * 7 + attempt
        fleet = FakeFleet(
            CONTROLLERS * PER_BLOCK,
            sleep_seconds=SLEEP_SECONDS,
            wake_seconds=WAKE_SECONDS,
            base=f"127.{60 + n % 40}.{(n // 40) % 256}.0",
        )
        try:
            return fleet.__enter__()
        except OSError:
            with contextlib.suppress(Exception):
                fleet.__exit__()
    raise RuntimeError("no free range of loopback addresses for the campaign's fakes")


@dataclass
class Draw:
    """The site's true draw at one moment (kW; miners and GPUs as IT, before PUE)."""

    now: float  # monotonic
    limit: float  # the limit in force (`MinerRun.limit_in_force`)
    gpu_it: float  # the GPU nodes as modelled: idle, foreign GPUs, the lease pods not ended
    gpu_idle: float  # of which idle and foreign (what no eviction sheds)
    truth: float = 0.0  # every fake's physical draw
    counted: float = 0.0  # the miners held to the limit (stuck ones at their full share)
    excused: float = 0.0  # the miners whose commands or faults are taking their time
    stuck: float = 0.0  # of counted: the miners a fault keeps mining, past DETECT_SECONDS
    asleep: float = 0.0  # what the counted miners not stuck draw once asleep
    parts: list[str] = field(default_factory=list)


@dataclass
class AgentTask:
    agent: Agent
    task: asyncio.Task[None]
    kube: Kube


class MinerRun(Run):
    """One sequence: the operator, an agent per controller, a block of fakes per controller."""

    def site_objects(self) -> list[dict[str, Any]]:
        return site_objects()

    def load(self) -> None:
        self.sb.load_objects(self.site_objects())
        self.fleet = open_fleet(self.seed)
        ips = self.fleet.addresses
        self.blocks: dict[str, list[str]] = {}
        for i in range(CONTROLLERS):
            name = f"asic-{i}"
            self.blocks[name] = ips[i * PER_BLOCK : (i + 1) * PER_BLOCK]
            self.sb.load_objects([controller(name, self.fleet.annotation(self.blocks[name]))])
        self.node_of = {ip: n for n, block in self.blocks.items() for ip in block}
        self.agents: dict[str, AgentTask] = {}
        # the clock of the grace periods (monotonic, as the fakes')
        self.marked_at: dict[str, float] = {}  # node -> when its curtailment marks appeared
        self.grace_until: dict[str, float] = {}  # miner -> excused until (reboots, heals)
        self.stuck_since: dict[str, float] = {}  # miner -> since when a fault holds it
        self.agent_down_since: dict[str, float] = {}
        self.limits: list[tuple[float, float]] = []  # (when, limit) at every change
        self.killed_at: float | None = None  # the operator killed, and not yet up since
        self.ready_at: float | None = None
        self.over: str | None = None  # the true draw's excess episode under way
        self.sampler: asyncio.Task[None] | None = None
        self.increase = False
        self.model_over = False

    async def prepare(self) -> None:
        self.sb.api.audit.on_write.append(self.on_write)
        operator = self._monitor.blame
        self._monitor.blame = lambda: self.increase and operator is not None and operator()
        for name in self.blocks:
            self.start_agent(name)
        self.sampler = asyncio.create_task(self.sample())

    async def cleanup(self) -> None:
        if self.sampler is not None:
            self.sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sampler
        for name in list(self.agents):
            await self.kill_agent(name)
        self.fleet.__exit__()

    def objects(self) -> list[dict[str, Any]]:
        out = []
        for rt in self.sb.store.types():
            if rt.kind in ("Site", "PowerBudget", "ComputeLease", "Node", "Pod", "MinerBlock"):
                out.extend(self.sb.store.list_objects(rt))
        return out

    # -- agents ---------------------------------------------------------------------------
    def start_agent(self, name: str) -> None:
        kube = Kube(load_connection(str(self.kubeconfig)))
        driver = Driver(Credentials(None), timeout=MINER_TIMEOUT, concurrency=16)
        agent = Agent(kube, name, driver, AgentSettings(interval=INTERVAL, overlap_seconds=30.0))
        self.agents[name] = AgentTask(agent, asyncio.create_task(agent.run(asyncio.Event())), kube)
        now = time.monotonic()
        self.agent_down_since.pop(name, None)
        for ip in self.blocks[name]:
            self.grace_until[ip] = max(self.grace_until.get(ip, 0.0), now + HEAL_GRACE)

    async def kill_agent(self, name: str) -> None:
        """As a SIGKILL would: the task is cancelled wherever it is."""
        running = self.agents.pop(name)
        running.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(running.task, 10)
        with contextlib.suppress(Exception):
            await running.kube.close()
        self.agent_down_since[name] = time.monotonic()

    # -- steps ----------------------------------------------------------------------------
    def miner(self, a: dict[str, Any]) -> FakeMiner:
        return self.fleet.miners[self.blocks[f"asic-{a['block']}"][a["miner"]]]

    def node_marked(self, name: str) -> bool:
        node = self.sb.store.get(self.sb.store.rt("", "nodes"), None, name)
        return node is not None and is_marked(node)

    def faulted(self) -> list[str]:
        return sorted(
            ip
            for ip, m in self.fleet.miners.items()
            if m.faults.unreachable or m.faults.silent or m.faults.refuse
            or m.faults.flag_mining_while_asleep
        )  # fmt: skip

    async def do(self, step: Step) -> None:
        a, kind, now = step.args, step.kind, time.monotonic()
        if kind in MINER_FAULT_KINDS:
            self.stats.miner_faults += 1
        if kind == "miner_unreachable":
            m = self.miner(a)
            if not m.faults.unreachable:
                await asyncio.to_thread(self.fleet.set_unreachable, m.ip, True)
                self.stuck_since.setdefault(m.ip, now)
        elif kind == "miner_silent":
            m = self.miner(a)
            self.fleet.set_silent(m.ip, True)
            self.stuck_since.setdefault(m.ip, now)
        elif kind == "miner_refuse":
            m = self.miner(a)
            m.faults.refuse = {"curtail"}
            self.stuck_since.setdefault(m.ip, now)
        elif kind == "miner_flag":
            self.miner(a).faults.flag_mining_while_asleep = True
        elif kind == "miner_reboot":
            marked = [n for n in self.blocks if self.node_marked(n)]
            name = self.pick(marked or list(self.blocks), a["pick"])
            if marked:
                self.stats.kinds["miner_reboot during a curtailment"] += 1
            for ip in self.blocks[name][: a["miners"]]:
                self.fleet.miners[ip].reboot_into_mining()
                self.grace_until[ip] = max(self.grace_until.get(ip, 0.0), now + REBOOT_GRACE)
        elif kind == "miner_heal":
            ip = self.pick(self.faulted(), a["pick"])
            if ip is not None:
                self.heal_miner(ip)
        elif kind == "agent_kill":
            name = self.pick(sorted(self.agents), a["pick"])
            if name is not None:
                await self.kill_agent(name)
                self.stats.agent_kills += 1
        elif kind == "agent_restart":
            name = self.pick(sorted(self.agent_down_since), a["pick"])
            if name is not None:
                self.start_agent(name)
                self.stats.agent_restarts += 1
        elif kind == "kill":
            if self.killed_at is None or self.ready_at is not None:
                self.killed_at, self.ready_at = now, None  # blind from the first kill on
            await super().do(step)
        else:
            await super().do(step)

    def heal_miner(self, ip: str) -> None:
        m = self.fleet.miners[ip]
        if m.faults.unreachable:
            self.fleet.set_unreachable(ip, False)
        m.faults.silent = False
        m.faults.refuse = set()
        m.faults.flag_mining_while_asleep = False
        self.stuck_since.pop(ip, None)
        self.grace_until[ip] = max(self.grace_until.get(ip, 0.0), time.monotonic() + HEAL_GRACE)

    async def heal(self) -> None:
        for ip in self.faulted():
            await asyncio.to_thread(self.heal_miner, ip)
        for name in sorted(self.agent_down_since):
            self.start_agent(name)
            self.stats.agent_restarts += 1
        await super().heal()

    # -- the invariant on the fakes ----------------------------------------------------------
    def monitor(self, rt: Any = None, kind: str = "", obj: Any = None, old: Any = None) -> None:
        if rt is not None and rt.kind == "Node" and obj is not None:
            name = obj["metadata"]["name"]
            was = old is not None and is_marked(old)
            if is_marked(obj) and not was:
                self.marked_at[name] = time.monotonic()
            elif not is_marked(obj):
                self.marked_at.pop(name, None)
            if self.verbose and was != is_marked(obj):
                print(f"    {time.monotonic():.1f} {name} {'curtailed' if is_marked(obj) else 'resumed'} by {WRITER.get()}", flush=True)  # fmt: skip
        # the model's invariant blames the operator for what it commands more (a resume, a
        # pod): the draw it counts also rises by itself here (a report going stale, a
        # miner rebooting into mining), between its writes
        self.increase = rt is not None and (
            (rt.kind == "Node" and old is not None and is_marked(old) and not is_marked(obj or {"metadata": {}}))
            or (rt.kind == "Pod" and old is None and obj is not None)
        )  # fmt: skip
        before = len(self.violations)
        super().monitor(rt, kind, obj, old)
        # one report per episode of the model's excess (the first write that made it worse)
        envelope = [v for v in self.violations[before:] if v.startswith("envelope: ")]
        if envelope and self.model_over:
            del self.violations[before:]
            self.violations.extend(v for v in envelope if not v.startswith("envelope: "))
        self.model_over = bool(envelope) or (self.model_over and self._monitor._last.get(SITE, (0.0, 0.0))[0] > 1e-6)  # fmt: skip
        if rt is not None:
            self.true_draw()

    async def sample(self) -> None:
        """The fakes' draw changes between writes: look at it between them too."""
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            self.true_draw()

    def on_write(self, agent: str) -> None:
        """The restarted operator's first write: it is up (it reacts from now on)."""
        if self.killed_at is not None and self.ready_at is None and f"pid {self.op.pid})" in agent:
            self.ready_at = time.monotonic()

    def limit_in_force(self, limit: float, now: float) -> float:
        """The limit the operator is held to: the highest of the last REACT_SECONDS (it
        reacts to a cut within a reconcile), and, from a kill of the operator until
        REACT_SECONDS after its restarted process first writes, the highest since
        REACT_SECONDS before the kill (successive kills before it is up: the first)."""
        if not self.limits or self.limits[-1][1] != limit:
            self.limits.append((now, limit))
        since = now - REACT_SECONDS
        if self.killed_at is not None and (self.ready_at is None or now < self.ready_at + REACT_SECONDS):  # fmt: skip
            since = min(since, self.killed_at - REACT_SECONDS)
        held = [lim for at, lim in self.limits if at >= since]
        before = [lim for at, lim in self.limits if at < since]
        return max(held + before[-1:])

    def true_draw(self) -> None:
        """The TRUE draw of the site stays within the limit except while commands already
        sent are taking the firmware's own time.

        The true draw: the facility's fixed load, plus PUE times the IT draw - every fake
        miner's `true_watts()` (the physics, not what its API reports) and the GPU nodes
        as the model counts them (idle draw, the pods of leases that are not terminal).

        Excused (left out of the sum), and nothing else:
        - the miners of a node the operator curtailed (marked) less than CURTAIL_GRACE
          (falling asleep + the agent's interval + SLACK) ago;
        - a miner that rebooted into mining less than REBOOT_GRACE (the agent's interval,
          falling asleep again + SLACK) ago;
        - a miner healed of its fault, or whose agent was restarted, less than HEAL_GRACE
          (identified again, commanded, asleep) ago;
        - a miner a fault keeps from its node's command (unreachable, silent, refusing
          `curtail`, or its agent killed) for its first DETECT_SECONDS: its excess is the
          fault's own. After that it counts at its full share of the nameplate (at least
          what it draws): the operator cannot do better than count it at full power (it
          is unreachable, or its block's report says it mines, or its report is stale)
          and shed others, so the invariant is then that the operator's *committed* draw
          covers it.
        The limit: the budget now, or the higher one of the last REACT_SECONDS (the
        operator's reaction to a cut), or, while a killed operator restarts, the highest
        since just before the kill (see `limit_in_force`); and no lower than what no
        command sheds (the fixed load, the GPU nodes idle, the stuck miners at their full
        share, every other miner asleep). Tolerance: NOISE of the miners'
        draw (their firmware reports it ±1 %, and the operator counts what they report).

        The grace periods (seconds, with the campaign's constants): CURTAIL_GRACE 7,
        REBOOT_GRACE 7, HEAL_GRACE 8, DETECT_SECONDS 21, REACT_SECONDS 3.

        An excess is reported once per episode (when it starts), with the draw's parts.
        """
        self.stats.samples += 1
        draw = self.draw()
        if draw is not None:
            self.check_true_draw(draw)

    def draw(self) -> Draw | None:
        """The site's true draw now, in its parts (see `true_draw`)."""
        now, wall = time.monotonic(), datetime.now(UTC)
        snap = build_fleet(self.objects(), wall).sites.get(SITE)
        site = site_envelope(snap, wall) if snap is not None else None
        if snap is None or site is None:
            return None
        limit = self.limit_in_force(site.envelope.limit_kw, now)
        gpu_idle = sum(n.idle_kw + n.foreign_gpus * n.per_gpu_kw for n in snap.gpu_nodes.values())
        gpu_it = gpu_idle
        for lease in snap.leases:
            for p in lease.pods:
                if not p.terminal:
                    node = snap.gpu_nodes.get(p.node)
                    gpu_it += p.gpus * (node.per_gpu_kw if node else snap.max_per_gpu_kw)
        share = NAMEPLATE_KW / PER_BLOCK
        d = Draw(now=now, limit=limit, gpu_it=gpu_it, gpu_idle=gpu_idle)
        for name, ips in self.blocks.items():
            marked_at = self.marked_at.get(name)
            agent_down = self.agent_down_since.get(name)
            for ip in ips:
                fake = self.fleet.miners[ip]
                kw = fake.true_watts(now) / 1000.0
                d.truth += kw
                stuck = self.stuck_since.get(ip, agent_down)
                if agent_down is not None and stuck is not None:
                    stuck = min(stuck, agent_down)
                curtailing = marked_at is not None and now < marked_at + CURTAIL_GRACE
                if curtailing or now < self.grace_until.get(ip, 0.0):
                    d.excused += kw
                elif stuck is not None:
                    if now < stuck + DETECT_SECONDS:
                        d.excused += kw
                    else:
                        d.counted += max(kw, share)
                        d.stuck += max(kw, share)
                        d.parts.append(f"{ip} ({name}) stuck, counted {max(kw, share):.2f}")
                else:
                    d.counted += kw
                    d.asleep += fake.sleep_watts / 1000.0
        return d

    def check_true_draw(self, d: Draw) -> None:
        total = FIXED_KW + PUE * (d.counted + d.gpu_it)
        # no lower than what no command sheds: the fixed load, the GPU nodes idle, the
        # stuck miners at their full share and every other miner asleep
        limit = max(d.limit, FIXED_KW + PUE * (d.gpu_idle + d.stuck + d.asleep))
        tolerance = NOISE * PUE * d.truth
        if total > limit + tolerance + 1e-6:
            if self.over is None:
                self.over = f"true draw {total:.2f} kW above the limit {limit:.2f} kW (+{tolerance:.2f} tolerance): {self.describe(d)}"  # fmt: skip
                self.violations.append(self.over)
        else:
            self.over = None

    def describe(self, d: Draw) -> str:
        return (
            f"miners counted {PUE * d.counted:.2f}, excused {PUE * d.excused:.2f},"
            f" GPU {PUE * d.gpu_it:.2f}, fixed {FIXED_KW:.2f};"
            f" marked {sorted(n for n in self.blocks if n in self.marked_at)};"
            f" fakes {self.fleet.phases()}" + (f"; {'; '.join(d.parts)}" if d.parts else "")
        )

    # -- settled ---------------------------------------------------------------------------
    async def converged(self) -> None:
        await super().converged()
        deadline = time.monotonic() + HEAL_GRACE + 10.0
        while True:
            wrong = self.miners_wrong()
            if not wrong or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        for message in wrong:
            self.violations.append(f"settled: {message}")

    def miners_wrong(self) -> list[str]:
        """Settled, healed: every fake as its node's marks say, every MinerBlock true."""
        out = []
        blocks = {
            b["metadata"]["name"]: b.get("status") or {}
            for b in self.sb.store.list_objects(self.sb.store.rt("dualcap.io", "minerblocks"))
        }
        for name, ips in self.blocks.items():
            want = "asleep" if self.node_marked(name) else "mining"
            phases = [self.fleet.miners[ip].phase() for ip in ips]
            if any(p != want for p in phases):
                out.append(f"{name} should be {want}, its miners are {phases}")
            status = blocks.get(name, {})
            key = "sleeping" if want == "asleep" else "mining"
            if status.get(key) != len(ips) or status.get("unreachable"):
                out.append(f"MinerBlock {name} says {status.get(key)} {key} of {len(ips)}, {status.get('unreachable')} unreachable")  # fmt: skip
        return out
