"""The miner agent on one block of 300 fake LuxOS miners.

A sandbox (in this process) holds one ASIC controller Node naming 300 fake miners (a
thread of this process, one per loopback address, taking the firmware's own time to fall
asleep and to wake); `dualcap agent` runs as its own process at a 10 s interval, driving
them with the real pyasic-rs. Then:

- taint (the curtailment marks): time until the MinerBlock reports all 300 asleep, beside
  the firmware's own time;
- untaint: time until it reports all 300 mining;
- steady state: the agent's resident memory and CPU (from /proc) over a minute at the
  10 s interval (targets: under 50 MB, under 5% of one core).

Prints the figures; asserts nothing on time.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dualcap.api.marks import curtail_patch, merge_patch, resume_patch  # noqa: E402
from dualcap_sandbox.app import Sandbox  # noqa: E402
from dualcap_sandbox.luxos import FakeFleet  # noqa: E402

MINERS = int(os.environ.get("BENCH_MINERS", "300"))
INTERVAL = float(os.environ.get("BENCH_INTERVAL", "10"))
STEADY = float(os.environ.get("BENCH_STEADY_SECONDS", "60"))
SLEEP_SECONDS, WAKE_SECONDS = 4.0, 8.0
NODE = "asic-bench"
TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size: shared library pages divided among their users."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def block_status(sb: Sandbox) -> dict[str, Any]:
    rt = sb.store.rt("dualcap.io", "minerblocks")
    obj = sb.store.get(rt, None, NODE) if rt else None
    return (obj or {}).get("status") or {}


async def wait_for(sb: Sandbox, key: str, timeout: float = 120.0, ths: float = 0.0) -> float:
    """Seconds until the MinerBlock reports every miner `key` (and at least `ths` TH/s)."""
    start = time.monotonic()
    s: dict[str, Any] = {}
    while time.monotonic() - start < timeout:
        s = block_status(sb)
        if (
            s.get(key) == MINERS
            and s.get("unreachable") == 0
            and (s.get("hashrateTHs") or 0.0) >= ths
        ):
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise SystemExit(f"the MinerBlock did not report all {key} within {timeout}s: {s}")


def patch_node(sb: Sandbox, patch: dict[str, Any]) -> None:
    rt = sb.store.rt("", "nodes")
    assert rt is not None
    old = sb.store.get(rt, None, NODE)
    assert old is not None
    patch["metadata"].pop("resourceVersion", None)
    sb.store.replace(rt, merge_patch(old, patch), old)


def start_agent(kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as err:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dualcap",
                "agent",
                "--node",
                NODE,
                "--kubeconfig",
                str(kubeconfig),
                "--interval",
                str(INTERVAL),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def stop_agent(agent: subprocess.Popen[bytes]) -> None:
    agent.terminate()
    try:
        agent.wait(10)
    except subprocess.TimeoutExpired:
        agent.kill()


async def main() -> None:
    with FakeFleet(MINERS, sleep_seconds=SLEEP_SECONDS, wake_seconds=WAKE_SECONDS) as fleet:
        sb = Sandbox()
        await sb.start()
        try:
            sb.load_files([str(ROOT / "crds")])
            sb.api.create_object(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": NODE,
                        "labels": {"dualcap.io/role": "asic"},
                        "annotations": {"dualcap.io/miners": fleet.annotation()},
                    },
                }
            )
            tmp = Path(tempfile.mkdtemp(prefix="bench-agent-"))
            kubeconfig = sb.write_kubeconfig(tmp / "kubeconfig")
            agent = start_agent(kubeconfig, tmp / "agent.log")
            try:
                startup = await wait_for(sb, "mining")
                print(
                    f"miners: {MINERS}, interval {INTERVAL:.0f}s, firmware: "
                    f"{SLEEP_SECONDS:.0f}s to sleep, {WAKE_SECONDS:.0f}s to wake"
                )
                print(f"agent start -> all {MINERS} reported mining: {startup:.2f}s")

                patch_node(
                    sb,
                    curtail_patch(
                        sb.store.get(sb.store.rt("", "nodes"), None, NODE), datetime.now(UTC)
                    ),
                )
                asleep = await wait_for(sb, "sleeping")
                true_w = fleet.true_watts()
                print(
                    f"taint   -> all {MINERS} reported asleep: {asleep:.2f}s "
                    f"(firmware's own {SLEEP_SECONDS:.1f}s; added {asleep - SLEEP_SECONDS:+.2f}s)"
                    f"; true draw {true_w / 1000:.2f} kW, reported "
                    f"{block_status(sb).get('powerKW')} kW"
                )

                patch_node(
                    sb,
                    resume_patch(
                        sb.store.get(sb.store.rt("", "nodes"), None, NODE), datetime.now(UTC)
                    ),
                )
                t_resume = time.monotonic()
                drawing = await wait_for(sb, "mining")
                nominal = sum(m.nominal_ths for m in fleet)
                await wait_for(sb, "mining", ths=0.95 * nominal)
                hashing = time.monotonic() - t_resume
                print(
                    f"untaint -> all {MINERS} reported mining (drawing): {drawing:.2f}s; "
                    f"hashing at 95%+ of nominal: {hashing:.2f}s "
                    f"(firmware's own {WAKE_SECONDS:.1f}s; added {hashing - WAKE_SECONDS:+.2f}s)"
                    f"; reported {block_status(sb).get('powerKW')} kW, "
                    f"{block_status(sb).get('hashrateTHs')} TH/s"
                )

                await asyncio.sleep(INTERVAL)  # past the transition's fast looks
                cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
                peak = 0.0
                while time.monotonic() - t0 < STEADY:
                    peak = max(peak, rss_mb(agent.pid))
                    await asyncio.sleep(0.5)
                cpu = (cpu_seconds(agent.pid) - cpu0) / (time.monotonic() - t0)
                print(
                    f"steady state over {STEADY:.0f}s: resident {rss_mb(agent.pid):.1f} MB "
                    f"(peak {peak:.1f} MB; {pss_mb(agent.pid):.1f} MB proportional), "
                    f"CPU {100 * cpu:.2f}% of one core"
                )
                print(f"agent log: {tmp / 'agent.log'}")
            finally:
                stop_agent(agent)
        finally:
            await sb.stop()


if __name__ == "__main__":
    asyncio.run(main())
