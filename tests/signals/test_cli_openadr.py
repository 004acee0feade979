"""`dualcap openadr --config FILE` as a process: the sandbox's kubeconfig, the VTN on
loopback, the budget written; and a configuration refused before anything starts."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta

import yaml

from dualcap.cli import main
from tests.peers.openadr_fixtures import Cluster, until
from tests.peers.vtn import Vtn, load_dispatch


async def test_the_command_writes_the_budget(cluster: Cluster, vtn: Vtn, tmp_path):
    config = tmp_path / "openadr.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "vtnURL": vtn.url,
                "venName": "dualcap-rockdale",
                "insecure": True,
                "pollIntervalSeconds": 0.2,
                "sites": [{"name": "tx-rockdale-1", "interconnectKW": 45_000, "floorKW": 2_000}],
            }
        )
    )
    vtn.send(load_dispatch("ers-cli", datetime.now(UTC) + timedelta(minutes=5), 30, 9_000))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dualcap",
        "openadr",
        "--config",
        str(config),
        env={**os.environ},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def written() -> bool:
            b = await cluster.budget("openadr-tx-rockdale-1")
            return bool(b) and [e["limitKW"] for e in b["spec"]["events"]] == [9_000]

        await until(written, timeout=30, what="the budget from the command")
        await until(lambda: _answered(vtn), what="optIn")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, err.decode()[-2000:]
    # openleadr logs a line per poll and per event at INFO: kept to warnings, while the
    # adapter's own INFO lines (the event and its answer) are there
    log = err.decode()
    assert " INFO dualcap.openadr: " in log, log[-2000:]
    assert " INFO openleadr: " not in log, log[-2000:]


async def _answered(vtn: Vtn) -> bool:
    return vtn.answer("ers-cli") == "optIn"


def test_plain_http_needs_the_explicit_flag(tmp_path, capsys):
    config = tmp_path / "openadr.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "vtnURL": "http://127.0.0.1:8080/OpenADR2/Simple/2.0b",
                "venName": "v",
                "sites": [{"name": "s", "interconnectKW": 10}],
            }
        )
    )
    assert main(["openadr", "--config", str(config)]) == 2
    assert "insecure: true" in capsys.readouterr().err
