"""The worker clusters of a MultiKueue manager, and what each of their sites offers.

A worker is a `MultiKueueCluster` of the manager; dualcap reaches it with the kubeconfig
MultiKueue itself uses, the Secret the cluster's `spec.clusterSource.kubeConfig` names (in
Kueue's namespace, key `kubeconfig`; `locationType: Path` reads that file). A worker's
offer is its sites' `status.offer`, published by its own dualcap (`spec.offer`): a
cluster with several sites offers its best one (the most GPUs free, then the most room).
A worker that does not answer, or whose offer is past its `validUntil`, offers nothing.
"""

from __future__ import annotations

import base64
import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from dualcap.api.common import API_VERSION
from dualcap.api.objects import parse_rfc3339
from dualcap.client import Client, connection_info
from dualcap.login import CredentialsError, from_kubeconfig
from dualcap.planning.offer import Offer, Room, Step
from dualcap.planning.placement import Candidate

log = logging.getLogger("dualcap.fleet")
KUEUE = "/apis/kueue.x-k8s.io/v1beta2"
SITES = f"/apis/{API_VERSION}/sites"
Obj = dict[str, Any]


@dataclass
class Worker:
    name: str
    client: Client | None  # None: why not in ``problem``
    problem: str | None = None
    version: str | None = None  # the kubeconfig's (the Secret's resourceVersion, or a path)


SKEW = timedelta(minutes=5)  # how far the sites' clocks may be off the fleet's


def offer_from_status(
    body: Any, now: datetime, seen_since: datetime | None = None, skew: timedelta = SKEW
) -> Offer | str:
    """An ``Offer`` from a Site's ``status.offer``; why not, as a string.

    Stale when the fleet has seen the same offer (its ``observedAt``) for longer than it is
    valid (``validUntil - observedAt``, a length: the fleet's clock against itself since
    ``seen_since``), or when ``now`` is past ``validUntil`` by more than ``skew`` (a site
    silent since long before the fleet first looked). A site's clock that is off by less
    than ``skew`` neither keeps a silent site in nor puts a live one out."""
    if not isinstance(body, dict):
        return "no offer (spec.offer not set on its Site?)"
    try:
        valid_until = parse_rfc3339(str(body["validUntil"]))
        observed = parse_rfc3339(str(body["observedAt"]))
        if seen_since is not None and now - seen_since > valid_until - observed:
            return f"offer stale (unchanged for {(now - seen_since).total_seconds():,.0f} s)"
        if now > valid_until + skew:
            return f"offer stale (observed {(now - observed).total_seconds():,.0f} s ago)"
        return Offer(
            observed_at=observed,
            gpus_free=int(body["gpusFree"]),
            per_gpu_kw=float(body["perGPUKW"]),
            limit_kw=float(body["limitKW"]),
            free_kw=float(body["freeKW"]),
            room=tuple(Room(float(r["kw"]), float(r["lostUSDPerMWh"])) for r in body["room"]),
            energy_usd_per_mwh=float(body["energyUSDPerMWh"]),
            ahead=tuple(
                sorted(
                    (
                        Step(
                            parse_rfc3339(str(s["at"])),
                            float(s["limitKW"]),
                            float(s["energyUSDPerMWh"]),
                        )
                        for s in body.get("ahead") or []
                    ),
                    key=lambda s: s.at,
                )
            ),
        )
    except (KeyError, TypeError, ValueError) as err:
        return f"offer unreadable ({type(err).__name__}: {err})"


def unsafe_kubeconfig(text: str) -> str | None:
    """Why a worker's kubeconfig is refused, as Kueue's MultiKueue refuses it (its
    validateKubeconfig), or None: no exec plugin or auth provider (they would run or call
    out from the fleet's pod), no file paths (token, CA, client certificate), no basic
    auth, TLS verified, a server named."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        return f"the kubeconfig is not YAML ({str(err).splitlines()[0]})"
    if not isinstance(doc, dict):
        return "the kubeconfig is not a kubeconfig"
    for entry in doc.get("users") or []:
        user = (entry or {}).get("user") or {}
        for key, why in (("exec", "exec plugins"), ("auth-provider", "auth providers"),
                         ("tokenFile", "tokenFile"), ("client-certificate", "certificate file paths"),
                         ("client-key", "key file paths"), ("username", "basic auth"),
                         ("password", "basic auth")):  # fmt: skip
            if user.get(key):
                return f"{why} are not allowed in a worker's kubeconfig"
    for entry in doc.get("clusters") or []:
        cluster = (entry or {}).get("cluster") or {}
        if cluster.get("insecure-skip-tls-verify"):
            return "insecure-skip-tls-verify is not allowed in a worker's kubeconfig"
        if cluster.get("certificate-authority"):
            return (
                "certificate-authority file paths are not allowed (use certificate-authority-data)"
            )
        if not cluster.get("server"):
            return "a cluster of the kubeconfig has no server"
    return None


class Workers:
    """The manager's worker clusters, their clients kept while their kubeconfig stays."""

    def __init__(self, manager: Client, namespace: str = "kueue-system", timeout: float = 5.0):
        self.manager = manager
        self.namespace = namespace
        self.timeout = timeout
        self._dir = tempfile.TemporaryDirectory(prefix="dualcap-fleet-")
        self._workers: dict[str, Worker] = {}
        self._closing: list[Client] = []  # clients of replaced kubeconfigs, closed next
        # (cluster, site) -> (the offer's observedAt, when the fleet first saw it)
        self._seen: dict[tuple[str, str], tuple[str, datetime]] = {}

    async def close(self) -> None:
        for w in self._workers.values():
            if w.client is not None:
                await w.client.close()
        while self._closing:
            await self._closing.pop().close()
        self._workers.clear()
        self._dir.cleanup()

    async def discover(self) -> dict[str, Worker]:
        """Every MultiKueueCluster of the manager, connected (or why not)."""
        got = await self.manager.request("GET", f"{KUEUE}/multikueueclusters")
        if not got.ok:
            log.warning("cannot list MultiKueueClusters: %s %s", got.code, got.message)
            return dict(self._workers)
        seen = set()
        for obj in (got.body or {}).get("items") or []:
            name = str(obj["metadata"]["name"])
            seen.add(name)
            await self._connect(name, obj)
        for gone in set(self._workers) - seen:
            old = self._workers.pop(gone)
            if old.client is not None:
                await old.client.close()
        return dict(self._workers)

    async def _connect(self, name: str, obj: Obj) -> None:
        source = ((obj.get("spec") or {}).get("clusterSource") or {}).get("kubeConfig")
        if not isinstance(source, dict):
            self._set(Worker(name, None, "its clusterSource has no kubeConfig (ClusterProfile is not supported)"))  # fmt: skip
            return
        location = str(source.get("location") or "")
        if source.get("locationType", "Secret") == "Path":
            self._set(Worker(name, None, "its kubeconfig is a path in Kueue's pod: the fleet reads Secrets only"))  # fmt: skip
            return
        else:
            got = await self.manager.request(
                "GET", f"/api/v1/namespaces/{self.namespace}/secrets/{location}"
            )
            if not got.ok:
                self._set(Worker(name, None, f"its Secret {self.namespace}/{location}: {got.code} {got.message}"))  # fmt: skip
                return
            version = str((got.body.get("metadata") or {}).get("resourceVersion"))
            data = (got.body.get("data") or {}).get("kubeconfig")
            if not data:
                self._set(Worker(name, None, f"its Secret {self.namespace}/{location} has no key kubeconfig"))  # fmt: skip
                return
            path = Path(self._dir.name) / f"{name}.kubeconfig"
        current = self._workers.get(name)
        if current is not None and current.version == version and current.client is not None:
            return
        try:
            text = base64.b64decode(data).decode()
        except (ValueError, UnicodeDecodeError):
            self._set(Worker(name, None, f"its Secret {self.namespace}/{location}: the kubeconfig is not text", version))  # fmt: skip
            return
        unsafe = unsafe_kubeconfig(text)
        if unsafe is not None:
            self._set(Worker(name, None, f"its Secret {self.namespace}/{location}: {unsafe}", version))  # fmt: skip
            return
        path.write_text(text)
        path.chmod(0o600)
        try:
            creds = from_kubeconfig(str(path))
            client = Client(connection_info(creds), timeout=self.timeout, credentials=creds)
        except (CredentialsError, OSError, ValueError) as err:  # ssl.SSLError is an OSError
            self._set(Worker(name, None, f"its kubeconfig: {err}", version))
            return
        self._set(Worker(name, client, None, version))

    def _set(self, worker: Worker) -> None:
        old = self._workers.get(worker.name)
        if old is not None and old.client is not None and old.client is not worker.client:
            self._closing.append(old.client)
        if worker.problem and (old is None or old.problem != worker.problem):
            log.warning("worker %s: %s", worker.name, worker.problem)
        self._workers[worker.name] = worker

    async def candidate(self, worker: Worker, now: datetime) -> Candidate:
        """The worker's best offer, or why it has none."""
        while self._closing:
            await self._closing.pop().close()
        if worker.client is None:
            return Candidate(worker.name, None, worker.problem)
        got = await worker.client.request("GET", SITES)
        if not got.ok:
            server = worker.client.server
            why = f"no answer from {server}" if got.code == 0 else f"HTTP {got.code} {got.reason}"
            return Candidate(worker.name, None, f"unreachable ({why})")
        offers: list[tuple[str, Offer]] = []
        problems = []
        listed = {(worker.name, str(s["metadata"]["name"])) for s in (got.body or {}).get("items") or []}  # fmt: skip
        for gone in [k for k in self._seen if k[0] == worker.name and k not in listed]:
            del self._seen[gone]  # a site deleted: forgotten
        for site in (got.body or {}).get("items") or []:
            body = (site.get("status") or {}).get("offer")
            key = (worker.name, str(site["metadata"]["name"]))
            stamp = str((body or {}).get("observedAt")) if isinstance(body, dict) else ""
            if key not in self._seen or self._seen[key][0] != stamp:
                self._seen[key] = (stamp, now)
            made = offer_from_status(body, now, self._seen[key][1])
            if isinstance(made, Offer):
                offers.append((str(site["metadata"]["name"]), made))
            else:
                problems.append(f"{site['metadata']['name']}: {made}")
        if not offers:
            return Candidate(worker.name, None, "; ".join(problems) or "no Site")
        _, best = max(offers, key=lambda so: (so[1].gpus_free, so[1].available_kw, so[0]))
        return Candidate(worker.name, best)
