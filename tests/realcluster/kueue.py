"""Kueue beside the local control plane: its CRDs from its own module's `config/`, its
webhooks, and its controller as a local process (built from its Go module by
`make kube-bins`, tools/kube/kueue).

kube-apiserver reaches webhooks through a Service, and there is no Service network here.
So the webhook configurations of Kueue's own manifests (`config/components/webhook/
manifests.yaml`, kept to the groups it runs: batch and kueue.x-k8s.io) are registered by
URL, `https://127.0.0.1:<port><path>`, with the CA of the launcher's PKI as their
caBundle, and Kueue serves them with the apiserver's own serving certificate (made for
127.0.0.1 by that CA). Kueue's internal certificate management is off: it would write its
certificate into a Secret and patch the configurations for a Service that does not exist.

Kueue runs with the batch/job integration, no leader election (one replica), the
visibility API server off (it would need an APIService and a Service), and copies the
`dualcap.io/preemptible` label from a Job to its Workload (`labelKeysToCopy`).
"""

from __future__ import annotations

import base64
import copy
import socket
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


GROUPS = {"batch", "kueue.x-k8s.io"}  # what the webhooks registered here admit
NAMESPACE = "kueue-system"


def kueue_dir(bin_dir: Path) -> Path:
    """Where `make kube-bins` copies Kueue's CRDs and webhook manifests."""
    return bin_dir.parent / "kueue"


def config(health: int, metrics: int, webhook: int, cert_dir: Path) -> dict[str, Any]:
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health}"},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics}"},
        "webhook": {"port": webhook, "host": "127.0.0.1", "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": ["batch/job"], "labelKeysToCopy": ["dualcap.io/preemptible"]},
    }  # fmt: skip


def webhook_configurations(manifests: Path, port: int, ca: bytes) -> list[dict[str, Any]]:
    """Kueue's webhook configurations, by URL on 127.0.0.1, for the groups it runs here."""
    out = []
    for doc in yaml.safe_load_all(manifests.read_text()):
        if not doc or doc.get("kind") not in (
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ):
            continue
        conf = copy.deepcopy(doc)
        conf["metadata"]["name"] = "kueue-" + conf["metadata"]["name"]
        hooks = []
        for hook in conf.get("webhooks") or []:
            groups = {g for rule in hook.get("rules") or [] for g in rule.get("apiGroups") or []}
            if not groups <= GROUPS:
                continue
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {
                "url": f"https://127.0.0.1:{port}{path}",
                "caBundle": base64.b64encode(ca).decode(),
            }
            hooks.append(hook)
        conf["webhooks"] = hooks
        out.append(conf)
    return out


# Without its internal certificate management, Kueue v0.17 reads its metrics serving pair
# from this fixed path (cert-manager mounts it in a pod) and exits when it is missing; there
# is no flag for it. The launcher puts a pair there when there is none.
METRICS_CERTS = Path("/etc/kueue/metrics/certs")


def metrics_certs(cert: Path, key: Path) -> None:
    """Kueue's metrics pair at its fixed path (left as it is when one is there)."""
    if (METRICS_CERTS / "tls.crt").exists() and (METRICS_CERTS / "tls.key").exists():
        return
    try:
        METRICS_CERTS.mkdir(parents=True, exist_ok=True)
        (METRICS_CERTS / "tls.crt").write_bytes(cert.read_bytes())
        key_path = METRICS_CERTS / "tls.key"
        key_path.write_bytes(key.read_bytes())
        key_path.chmod(0o600)
    except OSError as err:
        raise RuntimeError(
            f"Kueue needs a metrics certificate at {METRICS_CERTS} (a fixed path in v0.17) and"
            f" it cannot be written here: {err}"
        ) from None


class KueuePorts:
    def __init__(self) -> None:
        self.health = free_port()
        self.metrics = free_port()
        self.webhook = free_port()
