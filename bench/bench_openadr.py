"""From an event created on the VTN to the adapter's PowerBudget written.

openleadr's own VTN (in this process, on 127.0.0.1) and a sandbox Kubernetes API (in this
process too) serve `dualcap openadr` running as its own process, as it would in its pod.
Each round creates one LOAD_DISPATCH event on the VTN, at a random moment of the VEN's poll
cycle, and times until the adapter's budget carries it (read every 5 ms). The wait is at
most one poll interval plus the adapter's own work (the poll, the opt answer, the Site read
and the budget write): the figures below say how much that work is.

    BENCH_POLL_SECONDS (default 2), BENCH_EVENTS (default 10)
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kopf
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.peers.vtn import Vtn, load_dispatch  # noqa: E402

from dualcap.client import Client  # noqa: E402
from dualcap.manifests import load_objects  # noqa: E402
from dualcap_sandbox.app import Sandbox  # noqa: E402

POLL = float(os.environ.get("BENCH_POLL_SECONDS", "2"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "10"))
SITE = "tx-rockdale-1"
BUDGET = f"/apis/dualcap.io/v1alpha1/powerbudgets/openadr-{SITE}"


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("openleadr").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-openadr-"))
    sb = Sandbox()
    await sb.start()
    kubeconfig = sb.write_kubeconfig(tmp / "kubeconfig")
    sb.load_objects(load_objects(str(ROOT / "crds")))
    sb.load_objects([o for o in load_objects(str(ROOT / "examples")) if o.get("kind") == "Site"])
    os.environ["KUBECONFIG"] = str(kubeconfig)
    info = kopf.login_with_kubeconfig(
        logger=logging.getLogger("bench"), settings=kopf.OperatorSettings()
    )
    assert info is not None
    client = Client(info)
    vtn = Vtn(poll_seconds=POLL)
    await vtn.start()
    config = tmp / "openadr.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "vtnURL": vtn.url,
                "venName": "bench-ven",
                "insecure": True,
                "pollIntervalSeconds": POLL,
                "sites": [{"name": SITE, "interconnectKW": 45_000, "floorKW": 2_000}],
            }
        )
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dualcap", "openadr", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    latencies: list[float] = []
    waits: list[float] = []  # created -> the VTN hands it to a poll
    work: list[float] = []  # that poll's answer -> the budget written
    try:
        deadline = time.monotonic() + 30
        while not vtn.registrations:
            assert time.monotonic() < deadline, "the VEN did not register"
            await asyncio.sleep(0.05)
        rng = random.Random(1)
        for n in range(EVENTS):
            await asyncio.sleep(rng.uniform(0, POLL))  # a random phase of the poll cycle
            kw = 10_000 + 100 * n
            start = datetime.now(UTC) + timedelta(minutes=10)
            created = time.monotonic()
            created_at = datetime.now(UTC)
            vtn.send(load_dispatch(f"bench-{n}", start, 30, kw))
            while True:
                got = await client.request("GET", BUDGET)
                events = (got.body.get("spec") or {}).get("events") or [] if got.ok else []
                if any(e["limitKW"] == kw for e in events):
                    break
                assert time.monotonic() - created < POLL + 30, f"event {n} not written"
                await asyncio.sleep(0.005)
            latencies.append(time.monotonic() - created)
            handed = vtn.delivered_at[(f"bench-{n}", 0)]
            waits.append((handed - created_at).total_seconds())
            work.append(latencies[-1] - waits[-1])
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        await vtn.stop()
        await client.close()
        await sb.stop()
    over = [max(0.0, t - POLL) for t in latencies]
    print(
        f"OpenADR event on the VTN -> adapter's budget written ({EVENTS} events, poll {POLL:g} s)"
    )
    print(f"  latency   mean {statistics.mean(latencies):.3f} s  median {statistics.median(latencies):.3f} s"
          f"  max {max(latencies):.3f} s")  # fmt: skip
    print(f"  beyond one poll interval: max {max(over):.3f} s (target: poll interval + 5 s)")
    print(
        f"  waiting for the poll: mean {statistics.mean(waits):.3f} s;"
        f" the adapter's work after it (poll answer, opt, Site read, budget write):"
        f" mean {statistics.mean(work) * 1000:.0f} ms, max {max(work) * 1000:.0f} ms"
    )
    print("  each: " + ", ".join(f"{t:.3f}" for t in latencies))


if __name__ == "__main__":
    asyncio.run(main())
