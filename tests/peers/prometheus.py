"""A real Prometheus on loopback scraping a fake DCGM exporter, and a stub of its query API.

``Prometheus`` runs Debian's ``prometheus`` binary (``/usr/bin/prometheus``, or the one
``make`` unpacked into ``build/prometheus``) on 127.0.0.1 with a one-second scrape interval.
``FakeExporter`` is an aiohttp server on 127.0.0.1 serving gauges in the exposition text
format, e.g. NVIDIA DCGM exporter's ``DCGM_FI_DEV_POWER_USAGE`` per GPU; it runs in a thread
of its own so that a session-wide Prometheus and the tests' event loops stay apart.
``QueryApiStub`` answers ``/api/v1/query`` as the test says, for what a real Prometheus
cannot be made to do on cue (answer slowly, answer garbage).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from dualcap_sandbox.sunspec import free_port

ROOT = Path(__file__).resolve().parents[2]
UNPACKED = ROOT / "build" / "prometheus" / "usr" / "bin" / "prometheus"

DCGM_POWER = "DCGM_FI_DEV_POWER_USAGE"
DCGM_HELP = "Power draw (in W)."


def find_prometheus() -> Path | None:
    """The Prometheus binary to run: $DUALCAP_PROMETHEUS, Debian's, or the unpacked one."""
    for candidate in (os.environ.get("DUALCAP_PROMETHEUS"), "/usr/bin/prometheus", UNPACKED):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    found = shutil.which("prometheus")
    return Path(found) if found else None


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class FakeExporter:
    """Gauges on http://127.0.0.1:<port>/metrics; ``set`` changes them at run time."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._help: dict[str, str] = {}
        self._lock = threading.Lock()
        self.port = 0
        self.scrapes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, metric: str, labels: dict[str, str], value: float, help_: str = "") -> None:
        key = (metric, tuple(sorted(labels.items())))
        with self._lock:
            self._series[key] = value
            self._help.setdefault(metric, help_ or metric)

    def remove(self, metric: str, labels: dict[str, str]) -> None:
        with self._lock:
            self._series.pop((metric, tuple(sorted(labels.items()))), None)

    def set_gpu(self, host: str, gpu: int, watts: float, *, host_label: str = "Hostname") -> None:
        """One GPU's power as the DCGM exporter publishes it (``host_label``: Hostname in
        older releases, hostname in newer ones)."""
        labels = {
            "gpu": str(gpu),
            "UUID": f"GPU-{host}-{gpu:04d}",
            "pci_bus_id": f"00000000:{gpu + 7:02X}:00.0",
            "device": f"nvidia{gpu}",
            "modelName": "NVIDIA H100 80GB HBM3",
            host_label: host,
            "DCGM_FI_DRIVER_VERSION": "550.54.15",
        }
        self.set(DCGM_POWER, labels, watts, DCGM_HELP)

    def clear(self) -> None:
        with self._lock:
            self._series.clear()

    def exposition(self) -> str:
        """The current series in the Prometheus text format (version 0.0.4)."""
        with self._lock:
            series = sorted(self._series.items())
            helps = dict(self._help)
        lines: list[str] = []
        done: set[str] = set()
        for (metric, labels), value in series:
            if metric not in done:
                lines += [f"# HELP {metric} {helps[metric]}", f"# TYPE {metric} gauge"]
                done.add(metric)
            inner = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{metric}{{{inner}}} {format_value(value)}")
        return "\n".join(lines) + "\n"

    async def _metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        return web.Response(
            body=self.exposition().encode(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    def start(self) -> FakeExporter:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                app = web.Application()
                app.router.add_get("/metrics", self._metrics)
                self._runner = web.AppRunner(app, access_log=None)
                loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, "127.0.0.1", 0)
                loop.run_until_complete(site.start())
                server: Any = site._server
                self.port = int(server.sockets[0].getsockname()[1])
            except BaseException as err:  # reported to the starting thread
                errors.append(err)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-dcgm-exporter", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake exporter did not start within 10 s")
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = None
        self._thread = None


class PrometheusUnavailable(RuntimeError):
    """No Prometheus binary here, or it would not start."""


class Prometheus:
    """Debian's Prometheus on 127.0.0.1, scraping the given targets every second."""

    def __init__(
        self, targets: list[str], *, scrape_seconds: float = 1.0, job: str = "dcgm"
    ) -> None:
        self.targets = targets
        self.job = job
        self.scrape_seconds = scrape_seconds
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("Prometheus is not running")
        return self._process.pid

    def _config(self) -> str:
        interval = f"{int(self.scrape_seconds * 1000)}ms"
        return (
            "global:\n"
            f"  scrape_interval: {interval}\n"
            f"  scrape_timeout: {interval}\n"
            f"  evaluation_interval: {interval}\n"
            "scrape_configs:\n"
            f"  - job_name: {self.job}\n"
            "    static_configs:\n"
            f"      - targets: {json.dumps(self.targets)}\n"
        )

    def start(self, *, deadline_seconds: float = 30.0) -> Prometheus:
        binary = find_prometheus()
        if binary is None:
            raise PrometheusUnavailable(
                "no Prometheus binary: neither /usr/bin/prometheus nor build/prometheus"
                " (`make test` installs Debian's prometheus package or unpacks it)"
            )
        self._dir = tempfile.TemporaryDirectory(prefix="dualcap-prometheus-")
        workdir = Path(self._dir.name)
        (workdir / "prometheus.yml").write_text(self._config())
        last = ""
        for _ in range(3):  # the port can be taken between choosing and binding it
            self.port = free_port()
            log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - the process keeps it
            self._process = subprocess.Popen(
                [
                    str(binary),
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            if self._wait_ready(deadline_seconds):
                return self
            last = (workdir / "prometheus.log").read_text(errors="replace")[-2000:]
            self._kill()
        self.stop()
        raise PrometheusUnavailable(f"Prometheus did not become ready: {last}")

    def _wait_ready(self, deadline_seconds: float) -> bool:
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector, through the HTTP API (the tests' own view, not the client's)."""
        result: list[dict[str, Any]] = self.api("query", query=promql)["result"]
        return result

    def api(self, endpoint: str, **params: str) -> Any:
        """GET ``/api/v1/<endpoint>`` with ``params``: its ``data``; an error says why."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(
                f"{self.url}/api/v1/{endpoint}?{query}", timeout=5
            ) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{endpoint} {params}: {err.code} {err.read()[:500]!r}") from None
        return body["data"]

    def wait_for(
        self,
        promql: str,
        check: Callable[[list[dict[str, Any]]], bool],
        *,
        deadline_seconds: float = 20.0,
    ) -> list[dict[str, Any]]:
        """Poll ``promql`` until ``check`` holds (a scrape happened), or fail at the deadline."""
        deadline = time.monotonic() + deadline_seconds
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if check(result):
                return result
            time.sleep(0.2)
        raise AssertionError(
            f"{promql!r} never satisfied the check in {deadline_seconds} s: {result}"
        )

    def _kill(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
            self._process = None

    def stop(self) -> None:
        self._kill()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class QueryApiStub:
    """``/api/v1/query`` answered by ``handler``, on 127.0.0.1 (in the test's event loop)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.port = 0
        self.requests = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _query(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        return await self.handler(request)

    async def __aenter__(self) -> QueryApiStub:
        app = web.Application()
        app.router.add_route("*", "/api/v1/query", self._query)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        self.port = int(server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
