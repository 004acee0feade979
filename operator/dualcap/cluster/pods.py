"""The pods of a lease: built from the tenant's template, placed and hardened by dualcap.

The operator's service account creates these pods, not the tenant, so nothing in the
template may borrow the operator's power: no service account or its token, no host
namespaces, no hostPath volumes, no privilege. Placement (the planned GPU node) and the GPU
requests are dualcap's. A restricted securityContext is filled in where the template says
nothing; where it asks for less, the namespace's Pod Security admission decides.
"""

from __future__ import annotations

import copy
from typing import Any

from dualcap.api.common import API_VERSION, LEASE_LABEL, SITE_LABEL
from dualcap.api.lease import ComputeLease
from dualcap.api.names import PLANNED_NODE_ANNOTATION

FORBIDDEN_SPEC_FIELDS = (
    "nodeName",
    "serviceAccountName",
    "serviceAccount",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "hostUsers",
)


class TemplateRejected(ValueError):
    """The template asks for something a lease pod may not have."""


def check_template(template: dict[str, Any]) -> None:
    spec = template.get("spec") or {}
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            raise TemplateRejected(
                f"volume {volume.get('name')!r} is a hostPath: lease pods may not mount the node's files"
            )
        sources = ((volume.get("projected") or {}).get("sources")) or []
        if any("serviceAccountToken" in (src or {}) for src in sources):
            raise TemplateRejected(
                f"volume {volume.get('name')!r} projects a service account token: lease pods run without one"
            )
    for container in [
        *(spec.get("containers") or []),
        *(spec.get("initContainers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]:
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            raise TemplateRejected(f"container {container.get('name')!r} is privileged")
        added = ((sc.get("capabilities") or {}).get("add")) or []
        if any(c.upper() in ("SYS_ADMIN", "NET_ADMIN", "ALL", "CAP_SYS_ADMIN") for c in added):
            raise TemplateRejected(f"container {container.get('name')!r} adds capabilities {added}")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                raise TemplateRejected(f"container {container.get('name')!r} uses a hostPort")


def lease_pod(
    lease_obj: dict[str, Any],
    lease: ComputeLease,
    site: str,
    index: int,
    node: str,
    resource: str,
    gpu_labels: dict[str, str],
) -> dict[str, Any]:
    """Pod ``<lease>-<index>`` of a lease, placed on ``node``."""
    template = copy.deepcopy(lease_obj["spec"]["template"])
    check_template(template)
    tmeta = template.get("metadata") or {}
    spec: dict[str, Any] = template.get("spec") or {}
    for key in FORBIDDEN_SPEC_FIELDS:
        spec.pop(key, None)
    spec["automountServiceAccountToken"] = False
    spec["enableServiceLinks"] = False
    # Placement: the site's GPU nodes, and the node the plan chose.
    spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **gpu_labels}
    affinity = spec.setdefault("affinity", {})
    affinity["nodeAffinity"] = {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
            ]
        }
    }
    # GPUs: all of the pod's on its first container, none elsewhere.
    gpus = lease.spec.gpus_per_pod
    for n, container in enumerate(spec.get("containers") or []):
        res = container.setdefault("resources", {})
        for part in ("limits", "requests"):
            values = dict(res.get(part) or {})
            values.pop(resource, None)
            if n == 0:
                values[resource] = str(gpus)
            if values:
                res[part] = values
            else:
                res.pop(part, None)
        sc = container.setdefault("securityContext", {})
        sc.setdefault("allowPrivilegeEscalation", False)
        sc.setdefault("capabilities", {"drop": ["ALL"]})
    pod_sc = spec.setdefault("securityContext", {})
    pod_sc.setdefault("runAsNonRoot", True)
    pod_sc.setdefault("seccompProfile", {"type": "RuntimeDefault"})
    meta = lease_obj["metadata"]
    labels = {**(tmeta.get("labels") or {}), LEASE_LABEL: meta["name"], SITE_LABEL: site}
    annotations = {**(tmeta.get("annotations") or {}), PLANNED_NODE_ANNOTATION: node}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{meta['name']}-{index}",
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "ComputeLease",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }
