"""Security review as tests: the operator's service account creates lease pods, so a
hostile template must not get out through them (issue 8). Hypothesis builds templates
from every dangerous field there is; each is refused (TemplateRejected) or yields a pod
inside its lease's namespace, pinned to the planned GPU node of its site, with no
service account token, no host access and no privilege."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualcap.api import ComputeLease
from dualcap.cluster.pods import TemplateRejected, lease_pod
from tests.api.test_examples import CUSTOM

BASE = next(o for o in CUSTOM if o["kind"] == "ComputeLease" and o["metadata"]["name"] == "llm-inference")  # fmt: skip
GPU_LABELS = {"dualcap.io/role": "gpu"}
NODE = "gpu-h100-03"

HOSTILE_SPEC: dict[str, Any] = {
    "nodeName": st.just("asic-c01"),
    "serviceAccountName": st.just("cluster-admin"),
    "serviceAccount": st.just("cluster-admin"),
    "automountServiceAccountToken": st.just(True),
    "hostNetwork": st.just(True),
    "hostPID": st.just(True),
    "hostIPC": st.just(True),
    "nodeSelector": st.just({"kubernetes.io/hostname": "control-plane"}),
    "tolerations": st.just([{"operator": "Exists"}]),
    "affinity": st.just({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}]}}}),
    "securityContext": st.sampled_from([{"runAsUser": 0}, {"runAsNonRoot": False}, {}]),
    "volumes": st.sampled_from([
        [{"name": "root", "hostPath": {"path": "/"}}],
        [{"name": "tok", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}],
        [{"name": "scratch", "emptyDir": {}}],
    ]),
    "priorityClassName": st.just("system-node-critical"),
}  # fmt: skip
HOSTILE_CONTAINER: dict[str, Any] = {
    "securityContext": st.sampled_from([
        {"privileged": True}, {"capabilities": {"add": ["SYS_ADMIN"]}},
        {"allowPrivilegeEscalation": True}, {"runAsUser": 0}, {},
    ]),
    "ports": st.sampled_from([[{"containerPort": 80, "hostPort": 80}], [{"containerPort": 80}]]),
    "resources": st.just({"limits": {"nvidia.com/gpu": "64"}, "requests": {"nvidia.com/gpu": "64"}}),
}  # fmt: skip
HOSTILE_META = {
    "namespace": st.just("kube-system"),
    "labels": st.just({"dualcap.io/lease": "someone-else", "dualcap.io/site": "other-site"}),
    "name": st.just("kube-apiserver"),
}


def subset(fields: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


@settings(max_examples=300, deadline=None)
@given(spec=subset(HOSTILE_SPEC), container=subset(HOSTILE_CONTAINER), meta=subset(HOSTILE_META), sidecar=st.booleans())  # fmt: skip
def test_a_hostile_template_cannot_escape(spec, container, meta, sidecar) -> None:
    obj = copy.deepcopy(BASE)
    obj["metadata"] = {"name": "tenant", "namespace": "acme", "uid": "u-1"}
    template = obj["spec"]["template"]
    template["metadata"] = {**(template.get("metadata") or {}), **meta}
    template["spec"].update(copy.deepcopy(spec))
    template["spec"]["containers"][0].update(copy.deepcopy(container))
    if sidecar:
        template["spec"]["containers"].append(
            {"name": "side", "image": "x", **copy.deepcopy(container)}
        )
    # The model (and the CRD) refuse most of this outright; lease_pod must hold even if
    # such a template got past them (an older CRD, a hand-made object): it reads only the
    # raw template, and the parsed lease for its GPU count.
    lease = ComputeLease.model_validate(
        {**copy.deepcopy(BASE), "metadata": {"name": "tenant", "namespace": "acme"}}
    )
    try:
        pod = lease_pod(obj, lease, "tx-rockdale-1", 0, NODE, "nvidia.com/gpu", GPU_LABELS)
    except TemplateRejected as err:
        dangerous = (
            any("hostPath" in v or "projected" in v for v in spec.get("volumes") or [])
            or container.get("securityContext", {}).get("privileged")
            or "add" in container.get("securityContext", {}).get("capabilities", {})
            or any(p.get("hostPort") for p in container.get("ports") or [])
        )
        assert dangerous, f"refused a harmless template: {err}"
        return
    ps, pm = pod["spec"], pod["metadata"]
    # Its namespace, its name, its labels: the lease's, whatever the template says.
    assert pm["namespace"] == "acme" and pm["name"] == "tenant-0"
    assert (
        pm["labels"]["dualcap.io/lease"] == "tenant"
        and pm["labels"]["dualcap.io/site"] == "tx-rockdale-1"
    )
    assert pm["ownerReferences"][0]["uid"] == "u-1"
    # No service account token, no host namespaces, no node chosen by the tenant.
    for key in (
        "serviceAccountName",
        "serviceAccount",
        "nodeName",
        "hostNetwork",
        "hostPID",
        "hostIPC",
    ):
        assert key not in ps, key
    assert ps["automountServiceAccountToken"] is False
    assert not any("hostPath" in v or "projected" in v for v in ps.get("volumes") or [])
    # Pinned to the planned node among the site's GPU nodes.
    assert ps["nodeSelector"].items() >= GPU_LABELS.items()
    terms = ps["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [NODE]}]}
    ]
    # The GPUs the lease pays for, on the first container only.
    first, *others = ps["containers"]
    assert first["resources"]["limits"]["nvidia.com/gpu"] == str(lease.spec.gpus_per_pod)
    for c in others:
        assert "nvidia.com/gpu" not in (c.get("resources") or {}).get("limits", {})
    # No privilege: nothing privileged, no added capabilities, no host ports.
    for c in ps["containers"]:
        sc = c.get("securityContext") or {}
        assert not sc.get("privileged") and not (sc.get("capabilities") or {}).get("add")
        assert not any(p.get("hostPort") for p in c.get("ports") or [])
    # The restricted defaults where the template says nothing.
    if "securityContext" not in spec or spec["securityContext"] == {}:
        assert ps["securityContext"]["runAsNonRoot"] is True
        assert ps["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("field", ["serviceAccountName", "nodeName", "hostNetwork"])
def test_forbidden_fields_are_dropped(field: str) -> None:
    obj = copy.deepcopy(BASE)
    obj["metadata"] = {"name": "t", "namespace": "acme", "uid": "u"}
    obj["spec"]["template"]["spec"][field] = "x" if field != "hostNetwork" else True
    lease = ComputeLease.model_validate({**copy.deepcopy(BASE), "metadata": obj["metadata"]})
    pod = lease_pod(obj, lease, "s", 1, NODE, "nvidia.com/gpu", GPU_LABELS)
    assert field not in pod["spec"]
