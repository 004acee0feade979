"""A budget cut on a site of miner-agent blocks: the PowerBudget to the miners asleep.

A site of 25 ASIC controllers (`spec.asic.curtailment: MinerAgent`), each a block of 200
fake LuxOS miners (`dualcap_sandbox.luxos.FakeFleet`, a thread of this process, one
loopback address per miner, 5 s to fall asleep, 8 s to wake), driven by one `dualcap
agent` per block (each its own process, at its default 10 s interval, through the real
pyasic-rs); the sandbox and `dualcap run` each in their own process. Once the site has
settled with every block mining:

- cut: the PowerBudget's limit is cut so that most blocks must sleep. Timed from the
  budget write: the operator's marks on the last node, the last curtailed block's
  MinerBlock reporting all its miners asleep (target: within 10 s, i.e. under 5 s added to
  the firmware's own 5 s), and the Site confirming them; how many blocks, in how many
  waves of marks;
- restore: the limit put back: the marks gone from the last node, the last block's
  MinerBlock reporting all its miners mining and hashing.

The breakdown per block (read from the watches and from the fakes themselves): marked,
first and last command a miner received, last miner asleep (its last command plus the
firmware's time), MinerBlock all asleep; and the CPU each part used during the step. The
logs directory keeps each step's timeline (timeline-*.json: marks, MinerBlock and Site
writes) and each agent's debug log (a line per look: how long, how many commands).

The figures are bounded by CPU: the 5,000 fakes (one thread) and the 25 agents share this
machine's cores, where on a site each agent has its own node and the miners are hardware.
Prints the figures; asserts nothing on time; ends by itself (every wait has a deadline).

    python bench/bench_blocks.py [--blocks 25] [--miners 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from dualcap.api.marks import is_marked
from dualcap.api.minerblock import MINERS_ANNOTATION
from dualcap_sandbox.luxos import FakeFleet

ROOT = Path(__file__).resolve().parent.parent
SITE = "bench-blocks"
SLEEP_SECONDS, WAKE_SECONDS = 5.0, 8.0
INTERVAL = 10.0  # the agents' interval (their default)
NAMEPLATE_KW_PER_MINER = 3.3  # the fakes draw 3.25 kW mining
PUE, FIXED_KW = 1.08, 150.0
MINING_BLOCKS_AFTER_CUT = 0.2  # the cut leaves about a fifth of the blocks mining
# The Site's hysteresis, shorter than its defaults (300 s) so that the bench ends soon, long
# enough to cover a step: a curtailed block stays curtailed this long (else the plan swaps
# blocks still falling asleep for others measured a little worse: several waves), and a
# resumed block mines this long (else a block half woken, drawing more than it hashes yet,
# is curtailed again as unprofitable)
MIN_CURTAILED_SECONDS = 20
MIN_MINING_SECONDS = 60
SETTLE_SECONDS, STEP_SECONDS = 90.0, 45.0  # deadlines: start-up, and each of cut / restore
GROUP = "/apis/dualcap.io/v1alpha1"
MERGE = {"Content-Type": "application/merge-patch+json"}


def block_name(i: int) -> str:
    return f"asic-{i:02d}"


def annotation(ips: list[str]) -> str:
    """The `dualcap.io/miners` value: one `a.b.c.d-e` range per run of addresses in a /24."""
    runs: list[list[int]] = []
    for ip in sorted(int(ipaddress.IPv4Address(a)) for a in ips):
        if runs and ip == runs[-1][1] + 1 and ip >> 8 == runs[-1][0] >> 8:
            runs[-1][1] = ip
        else:
            runs.append([ip, ip])
    parts = []
    for first, last in runs:
        a = str(ipaddress.IPv4Address(first))
        parts.append(a if first == last else f"{a}-{last & 0xFF}")
    return ",".join(parts)


def site_objects(blocks: dict[str, list[str]], limit_kw: float) -> list[dict[str, Any]]:
    per_block = len(next(iter(blocks.values())))
    site = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "Site",
        "metadata": {"name": SITE},
        "spec": {
            "facility": {"pue": PUE, "fixedKW": FIXED_KW},
            "asic": {
                "curtailment": "MinerAgent",
                "powerKW": round(per_block * NAMEPLATE_KW_PER_MINER, 1),
                "hashrateTHs": per_block * 120,
                "hashpriceUSDPerPHDay": 50,
            },
            "behavior": {
                "minMiningSeconds": MIN_MINING_SECONDS,
                "minCurtailedSeconds": MIN_CURTAILED_SECONDS,
                "maxRampUpKWPerMinute": 1_000_000,
            },
        },
    }
    budget = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "PowerBudget",
        "metadata": {"name": SITE},
        "spec": {"siteRef": SITE, "limitKW": limit_kw, "energyPrice": {"usdPerMWh": 45}},
    }
    nodes = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"dualcap.io/site": SITE, "dualcap.io/role": "asic"},
                "annotations": {MINERS_ANNOTATION: annotation(ips)},
            },
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }
        for name, ips in blocks.items()
    ]
    return [site, budget, *nodes]


@dataclass
class Timeline:
    """What the watches saw, in wall-clock seconds (time.time())."""

    marked: dict[str, bool] = field(default_factory=dict)
    mark_changes: list[tuple[float, str, bool]] = field(default_factory=list)
    blocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    block_writes: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    site: dict[str, Any] = field(default_factory=dict)
    site_writes: list[tuple[float, dict[str, Any]]] = field(default_factory=list)


async def watch(
    s: aiohttp.ClientSession, url: str, on: Callable[[float, dict[str, Any]], None]
) -> None:
    """List then watch `url`, calling `on` for every object (list items, then events)."""
    async with s.get(url) as r:
        doc = await r.json()
    now = time.time()
    for item in doc.get("items") or []:
        on(now, item)
    params = {"watch": "true", "resourceVersion": doc["metadata"]["resourceVersion"]}
    async with s.get(url, params=params, timeout=aiohttp.ClientTimeout(total=None)) as r:
        async for line in r.content:
            if line.strip():
                ev = json.loads(line)
                if ev.get("type") in ("ADDED", "MODIFIED"):
                    on(time.time(), ev["object"])


def start_watches(s: aiohttp.ClientSession, base: str, tl: Timeline) -> list[asyncio.Task[None]]:
    def node(at: float, obj: dict[str, Any]) -> None:
        name, now = obj["metadata"]["name"], is_marked(obj)
        if tl.marked.get(name) != now:
            tl.marked[name] = now
            tl.mark_changes.append((at, name, now))

    def block(at: float, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        tl.blocks[obj["metadata"]["name"]] = status
        tl.block_writes.append((at, obj["metadata"]["name"], status))

    def site(at: float, obj: dict[str, Any]) -> None:
        if obj["metadata"]["name"] == SITE:
            tl.site = obj.get("status") or {}
            tl.site_writes.append((at, tl.site))

    return [
        asyncio.create_task(watch(s, f"{base}/api/v1/nodes?labelSelector=dualcap.io/site={SITE}", node)),
        asyncio.create_task(watch(s, f"{base}{GROUP}/minerblocks", block)),
        asyncio.create_task(watch(s, f"{base}{GROUP}/sites", site)),
    ]  # fmt: skip


def all_asleep(status: dict[str, Any], miners: int) -> bool:
    return status.get("sleeping") == miners and status.get("unreachable") == 0


def all_mining(status: dict[str, Any], miners: int) -> bool:
    return (
        status.get("mining") == miners
        and status.get("unreachable") == 0
        and (status.get("hashrateTHs") or 0.0) >= 0.95 * miners * 120
    )


def ready(status: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )


async def until(check: Callable[[], Any], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"not within {timeout:.0f}s: {what()}")
        await asyncio.sleep(0.05)


def first_at(writes: list[tuple[float, str, dict[str, Any]]], name: str, after: float, test: Callable[[dict[str, Any]], bool]) -> float | None:  # fmt: skip
    return next((t for t, n, st in writes if n == name and t >= after and test(st)), None)


def waves(times: list[float], gap: float = 1.0) -> list[list[float]]:
    out: list[list[float]] = []
    for t in sorted(times):
        if out and t - out[-1][-1] <= gap:
            out[-1].append(t)
        else:
            out.append([t])
    return out


def commands_after(fleet: FakeFleet, ips: list[str], word: str, after_mono: float) -> list[float]:
    """Monotonic times of the `curtail ...,<word>` commands these fakes received after."""
    out = []
    for ip in ips:
        m = fleet.miners[ip]
        with m._lock:  # the fleet's thread appends while we read
            out += [t for t, c, p in m.commands if c == "curtail" and t >= after_mono and (p or "").endswith(word)]  # fmt: skip
    return out


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def cpu_by_part(parts: dict[str, list[int]]) -> dict[str, float]:
    out = {}
    for part, pids in parts.items():
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        out[part] = total
    return out


def start_agent(name: str, kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "dualcap", "agent", "--node", name,
             "--kubeconfig", str(kubeconfig), "--interval", str(INTERVAL), "-v"],
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


async def step(
    s: aiohttp.ClientSession,
    base: str,
    tl: Timeline,
    fleet: FakeFleet,
    blocks: dict[str, list[str]],
    limit_kw: float,
    cut: bool,
    tmp: Path,
    parts: dict[str, list[int]],
) -> dict[str, Any]:
    """Patch the budget to `limit_kw`; wait for the site to settle there; the timings."""
    miners = len(next(iter(blocks.values())))
    before = set(n for n, m in tl.marked.items() if m)
    offset = time.time() - time.monotonic()
    cpu0 = cpu_by_part(parts)
    t0 = time.time()
    async with s.patch(
        f"{base}{GROUP}/powerbudgets/{SITE}", data=json.dumps({"spec": {"limitKW": limit_kw}}), headers=MERGE
    ) as r:  # fmt: skip
        assert r.status == 200, await r.text()
    patched = time.time()

    def targets() -> set[str]:
        return {n for n, m in tl.marked.items() if m} if cut else before

    def block_done(n: str) -> bool:
        st = tl.blocks.get(n) or {}
        return all_asleep(st, miners) if cut else all_mining(st, miners)

    def settled() -> bool:
        st = tl.site
        if not (
            ready(st)
            and (st.get("limitKW") or 0) <= limit_kw + 0.5
            and st.get("limitKW") == limit_kw
        ):
            return False  # fmt: skip
        counts = st.get("controllers") or {}
        if cut:
            done = targets() and counts.get("curtailing") == 0 and counts.get("curtailed") == len(targets())  # fmt: skip
        else:
            done = not any(tl.marked.values()) and counts.get("mining") == len(blocks)
        return bool(done) and all(block_done(n) for n in targets())

    try:
        await until(settled, STEP_SECONDS, lambda: f"site {json.dumps(tl.site.get('controllers'))}, marked {sorted(targets())}")  # fmt: skip
        await asyncio.sleep(2.0)  # a later wave would show here
    except SystemExit as err:
        print(f"  {'cut' if cut else 'restore'}: did not settle: {err}")
    wall = time.time() - t0
    cpu = {k: (v - cpu0[k]) / wall for k, v in cpu_by_part(parts).items()}
    print(
        f"    CPU over the step's {wall:.0f} s, in cores: "
        + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
    )
    names = sorted(targets())
    changes = [(t, n) for t, n, m in tl.mark_changes if t >= t0 and m == cut]
    mark_at = {n: t for t, n in changes}
    per_block = []
    word = "sleep" if cut else "wakeup"
    for n in names:
        cmds = commands_after(fleet, blocks[n], word, t0 - offset)
        done = first_at(tl.block_writes, n, mark_at.get(n, t0), lambda st: all_asleep(st, miners) if cut else all_mining(st, miners))  # fmt: skip
        per_block.append({
            "name": n,
            "marked": mark_at.get(n, float("nan")) - t0,
            "first_cmd": (min(cmds) + offset - t0) if cmds else float("nan"),
            "last_cmd": (max(cmds) + offset - t0) if cmds else float("nan"),
            "commands": len(cmds),
            "done": (done - t0) if done else float("nan"),
        })  # fmt: skip
    confirmed = next(
        (
            t for t, st in tl.site_writes
            if t >= t0 and ready(st) and st.get("limitKW") == limit_kw
            and ((st.get("controllers") or {}).get("curtailed") == len(names) if cut
                 else (st.get("controllers") or {}).get("mining") == len(blocks))
        ),
        float("nan"),
    )  # fmt: skip
    with (tmp / f"timeline-{'cut' if cut else 'restore'}.json").open("w") as f:
        json.dump({
            "t0": t0,
            "marks": [(t - t0, n, m) for t, n, m in tl.mark_changes if t >= t0 - 1],
            "blocks": [(t - t0, n, {k: st.get(k) for k in ("mining", "sleeping", "unreachable", "observedAt")})
                       for t, n, st in tl.block_writes if t >= t0 - 1],
            "site": [(t - t0, st.get("controllers"), st.get("limitKW")) for t, st in tl.site_writes if t >= t0 - 1],
        }, f, indent=0)  # fmt: skip
    return {
        "t0": t0,
        "patched": patched - t0,
        "names": names,
        "waves": waves([t - t0 for t, _ in changes]),
        "per_block": per_block,
        "site_confirmed": confirmed - t0,
        "late_marks": [n for t, n, m in tl.mark_changes if t >= t0 and m != cut],
    }


def latest(xs: list[float]) -> float:
    """The last of these times; nan when any is missing (a block that never got there)."""
    return float("nan") if any(x != x for x in xs) else max(xs)


def report(kind: str, r: dict[str, Any], firmware: float) -> None:
    pb = r["per_block"]
    if not pb:
        print(f"  {kind}: no block changed")
        return
    last_mark = latest([b["marked"] for b in pb])
    last_done = latest([b["done"] for b in pb])
    w = r["waves"]
    print(f"  {kind}: {len(pb)} blocks, marked in {len(w)} wave(s) " + ", ".join(
        f"[{len(x)} at {x[0]:.2f}-{x[-1]:.2f}s]" for x in w))  # fmt: skip
    print(f"    budget write accepted:                {r['patched']:.2f} s")
    print(f"    operator's marks on the last node:    {last_mark:.2f} s")
    print(
        f"    last block's first command to a miner: {latest([b['first_cmd'] for b in pb]):.2f} s"
    )
    print(f"    last command to a miner:              {latest([b['last_cmd'] for b in pb]):.2f} s")
    state = "asleep" if kind == "cut" else "mining and hashing"
    print(f"    last block's MinerBlock all {state}: {last_done:.2f} s "
          f"(firmware's own {firmware:.0f} s; added {last_done - firmware:+.2f} s)")  # fmt: skip
    print(f"    the Site confirming it:               {r['site_confirmed']:.2f} s")
    lag = [b["first_cmd"] - b["marked"] for b in pb]
    spread = [b["last_cmd"] - b["first_cmd"] for b in pb]
    report_lag = [b["done"] - (b["last_cmd"] + firmware) for b in pb]
    print(f"    per block: mark -> first command median {statistics.median(lag):.2f} s (max {max(lag):.2f}); "
          f"first -> last command median {statistics.median(spread):.2f} s (max {max(spread):.2f}); "
          f"last miner {state.split()[0]} -> MinerBlock median {statistics.median(report_lag):.2f} s "
          f"(max {max(report_lag):.2f}); commands received per block {sum(b['commands'] for b in pb) / len(pb):.0f}")  # fmt: skip
    if r["late_marks"]:
        print(f"    reversed during the step: {r['late_marks']}")


async def run(args: argparse.Namespace, fleet: FakeFleet, tmp: Path) -> None:
    ips = fleet.addresses
    blocks = {
        block_name(i): ips[i * args.miners : (i + 1) * args.miners] for i in range(args.blocks)
    }
    block_kw = args.miners * NAMEPLATE_KW_PER_MINER
    full = round((args.blocks * block_kw * PUE + FIXED_KW) * 1.1)
    keep = max(1, round(args.blocks * MINING_BLOCKS_AFTER_CUT))
    cut = round((keep + 0.5) * args.miners * 3.25 * PUE + FIXED_KW)
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump_all(site_objects(blocks, full)))
    kubeconfig = tmp / "kubeconfig"
    sandbox = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
        [sys.executable, "-m", "dualcap_sandbox", "--port", str(18000 + os.getpid() % 900),
         "--kubeconfig", str(kubeconfig), "--load", str(ROOT / "crds"), "--load", str(path)],
        stdout=subprocess.DEVNULL, stderr=(tmp / "sandbox.log").open("w"),
    )  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(600):
            if kubeconfig.exists() or sandbox.poll() is not None:
                break
            await asyncio.sleep(0.1)
        if not kubeconfig.exists():
            raise SystemExit(f"sandbox did not start: {(tmp / 'sandbox.log').read_text()[-2000:]}")
        base = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        t_start = time.time()
        for name in blocks:
            procs.append(start_agent(name, kubeconfig, tmp / f"agent-{name}.log"))
        env = dict(os.environ, KUBECONFIG=str(kubeconfig))
        with (tmp / "operator.log").open("w") as err:
            procs.append(subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "dualcap", "run", "--liveness", "none", "--metrics-port", "0",
                 "--log-format", "plain"],
                env=env, stdout=subprocess.DEVNULL, stderr=err,
            ))  # fmt: skip
        tl = Timeline()
        parts = {
            "agents": [p.pid for p in procs[:-1]],
            "operator": [procs[-1].pid],
            "sandbox": [sandbox.pid],
            "fakes (this process)": [os.getpid()],
        }
        async with aiohttp.ClientSession() as s:
            tasks = start_watches(s, base, tl)
            try:
                await until(
                    lambda: (
                        ready(tl.site)
                        and (tl.site.get("controllers") or {}).get("mining") == args.blocks
                        and len(tl.blocks) == args.blocks
                        and all(all_mining(st, args.miners) for st in tl.blocks.values())
                    ),
                    SETTLE_SECONDS,
                    lambda: (
                        f"site {json.dumps(tl.site.get('controllers'))}, {len(tl.blocks)} blocks"
                    ),
                )
                print(f"  start-up: {args.blocks} agents and the operator to the site settled, all mining: {time.time() - t_start:.1f} s")  # fmt: skip
                await asyncio.sleep(INTERVAL)  # past the agents' start-up looks: a steady state
                print(f"  limit {full} kW -> {cut} kW (room for about {keep} blocks of {block_kw:.0f} kW)")  # fmt: skip
                r = await step(s, base, tl, fleet, blocks, cut, cut=True, tmp=tmp, parts=parts)
                report("cut", r, SLEEP_SECONDS)
                asleep = sum(m.phase() == "asleep" for n in r["names"] for m in (fleet.miners[ip] for ip in blocks[n]))  # fmt: skip
                print(f"    the fakes: {asleep} of {len(r['names']) * args.miners} miners of the curtailed blocks asleep")  # fmt: skip
                if not args.no_restore:
                    await asyncio.sleep(
                        max(INTERVAL, MIN_CURTAILED_SECONDS - (time.time() - r["t0"]) + 1)
                    )
                    r = await step(
                        s, base, tl, fleet, blocks, full, cut=False, tmp=tmp, parts=parts
                    )
                    report("restore", r, WAKE_SECONDS)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        stop(procs)
        sandbox.terminate()
        sandbox.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=25)
    parser.add_argument("--miners", type=int, default=200, help="per block")
    parser.add_argument("--no-restore", action="store_true", help="skip the restore step")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-blocks-"))
    print(
        f"dualcap miner-agent blocks benchmark: {args.blocks} blocks x {args.miners} fake LuxOS "
        f"miners ({SLEEP_SECONDS:.0f} s to sleep, {WAKE_SECONDS:.0f} s to wake), an agent per block "
        f"at {INTERVAL:.0f} s (sandbox, operator and agents each in their own process)"
    )
    t = time.monotonic()
    try:
        with FakeFleet(args.blocks * args.miners, sleep_seconds=SLEEP_SECONDS, wake_seconds=WAKE_SECONDS) as fleet:  # fmt: skip
            asyncio.run(run(args, fleet, tmp))
    finally:
        print(f"  whole run: {time.monotonic() - t:.0f} s; logs in {tmp}")


if __name__ == "__main__":
    main()
