"""The Helm chart, rendered and linted by Helm's own engine (helm-python-sdk, no helm
binary), every manifest validated against the official schemas (issue 6)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is part of the test extras")

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "dualcap"
K8S_VERSION = "1.30"
NAMESPACE = "dualcap-system"
# Kinds whose schemas are not in the official set: checked by the tests below instead.
NOT_CORE = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ClusterKopfPeering"}

ALL_ON: dict[str, Any] = {
    "replicaCount": 2,
    "strategy": {"type": "RollingUpdate"},
    "operator": {"watchNamespaces": ["research", "acme"], "logLevel": "debug", "extraArgs": ["-v"]},
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "alerts": {"enabled": True, "labels": {"release": "prometheus"}},
        "dashboard": {"enabled": True, "annotations": {"grafana_folder": "Power"}},
    },
    "peering": {"enabled": True},
    "kueue": {"enabled": True},
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}},
    "imagePullSecrets": [{"name": "registry"}],
    "priorityClassName": "system-cluster-critical",
    "podAnnotations": {"example.com/a": "b"},
    "tolerations": [{"key": "ops", "operator": "Exists", "effect": "NoSchedule"}],
}
OFF: dict[str, Any] = {
    "metrics": {"enabled": False},
    "rbac": {"create": False},
    "serviceAccount": {"create": False, "name": "existing"},
}
CASES = {"defaults": {}, "all-on": ALL_ON, "off": OFF}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    chart = helm.Chart.load(str(CHART))
    out = chart.render(values, name="dualcap", namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("case", CASES)
def test_lint_is_clean(case: str) -> None:
    report = helm.lint(str(CHART), CASES[case], strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


@pytest.mark.parametrize("case", CASES)
def test_every_manifest_is_valid_for_kubernetes(case: str) -> None:
    docs = render(CASES[case])
    assert docs
    for doc in docs:
        if doc["kind"] in NOT_CORE:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        labels = doc["metadata"]["labels"]
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "helm.sh/chart",
                    "app.kubernetes.io/managed-by", "app.kubernetes.io/version"):  # fmt: skip
            assert key in labels, (doc["kind"], key)


def test_one_resource_per_template_file() -> None:
    chart = helm.Chart.load(str(CHART))
    for path, text in chart.render(ALL_ON, name="dualcap", namespace=NAMESPACE).items():
        if path.endswith(".yaml") and text.strip():  # the agent's are off: empty
            assert len([d for d in yaml.safe_load_all(text) if d]) == 1, path


def test_defaults_one_replica_recreate_liveness_and_restricted_security() -> None:
    docs = render({})
    (deploy,) = by_kind(docs, "Deployment")
    spec = deploy["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "privileged" not in sc or sc["privileged"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and probe["port"] == "healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"healthz": 8080, "metrics": 9090}
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert "--metrics-port=9090" in container["args"]
    assert not by_kind(docs, "ServiceMonitor") and not by_kind(docs, "ClusterKopfPeering")
    assert not any(d["kind"] == "CustomResourceDefinition" for d in docs)  # they are in crds/


def test_args_are_flags_dualcap_run_accepts() -> None:
    from dualcap.cli import build_parser

    for case in CASES.values():
        (deploy,) = by_kind(render(case), "Deployment")
        args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        parsed = build_parser().parse_args(args)
        assert parsed.func.__name__ == "_cmd_run"


def test_all_on_peering_service_monitor_and_namespaces() -> None:
    docs = render(ALL_ON)
    (deploy,) = by_kind(docs, "Deployment")
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--peering=dualcap" in args and "--priority=auto" in args
    assert "--namespace=research" in args and "--namespace=acme" in args and "--verbose" in args
    (peering,) = by_kind(docs, "ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1" and peering["metadata"]["name"] == "dualcap"
    (crd,) = by_kind(docs, "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "clusterkopfpeerings.kopf.dev"
    (monitor,) = by_kind(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (service,) = by_kind(docs, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    (role,) = by_kind(docs, "ClusterRole")
    assert any("kopf.dev" in r["apiGroups"] for r in role["rules"])
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    (dashboard,) = by_kind(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Power"}
    assert json.loads(dashboard["data"]["dualcap.json"]) == json.loads(
        (CHART / "dashboards" / "dualcap.json").read_text()
    )


FLEET: dict[str, Any] = {"fleet": {"enabled": True, "usdPerGPUHour": 3.5, "intervalSeconds": 2}}


def test_the_fleet_deployment_and_its_least_privilege() -> None:
    report = helm.lint(str(CHART), FLEET, strict=True, namespace=NAMESPACE)
    assert report["errors"] == [] and not [m for m in report["messages"] if m["severity"] >= 2]
    docs = render(FLEET)
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    (deploy,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-fleet")]
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "fleet" and "--usd-per-gpu-hour=3.5" in args and "--interval=2" in args
    from dualcap.cli import build_parser

    parsed = build_parser().parse_args(args)
    assert parsed.func.__name__ == "_cmd_fleet" and parsed.kueue_namespace == "kueue-system"
    (role,) = [d for d in by_kind(docs, "ClusterRole") if d["metadata"]["name"].endswith("-fleet")]
    grants = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
              for r in rule["resources"] for v in rule["verbs"]}  # fmt: skip
    assert grants == {
        *{("kueue.x-k8s.io", r, v) for r in ("workloads", "admissionchecks", "multikueueconfigs",
                                             "multikueueclusters") for v in ("get", "list")},
        ("kueue.x-k8s.io", "workloads/status", "patch"),
        ("", "events", "create"),
    }  # fmt: skip
    (secrets,) = [d for d in by_kind(docs, "Role") if d["metadata"]["name"].endswith("-fleet")]
    assert secrets["metadata"]["namespace"] == "kueue-system"
    assert secrets["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "patch"],
         "resourceNames": ["dualcap-fleet"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]  # fmt: skip
    assert not [d for d in render({}) if d["metadata"]["name"].endswith("-fleet")]


def test_off_renders_no_rbac_and_no_metrics() -> None:
    docs = render(OFF)
    kinds = {d["kind"] for d in docs}
    assert kinds == {"Deployment"}
    (deploy,) = by_kind(docs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "existing"
    assert "--metrics-port=0" in pod["containers"][0]["args"]


def rules(values: dict[str, Any]) -> set[tuple[str, str, str]]:
    (role,) = by_kind(render(values), "ClusterRole")
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


# What the operator calls, by the code that calls it (the traffic test in
# tests/operator/test_rbac.py checks the same against what it really sends).
USED = {
    ("", "nodes", "list"), ("", "nodes", "watch"), ("", "nodes", "patch"),
    ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"),
    ("", "pods", "create"), ("", "pods", "delete"),
    ("", "events", "create"),
    ("dualcap.io", "sites", "get"), ("dualcap.io", "sites", "list"), ("dualcap.io", "sites", "watch"),
    ("dualcap.io", "sites", "patch"),
    ("dualcap.io", "powerbudgets", "list"), ("dualcap.io", "powerbudgets", "watch"),
    ("dualcap.io", "computeleases", "list"), ("dualcap.io", "computeleases", "watch"),
    ("dualcap.io", "minerblocks", "list"), ("dualcap.io", "minerblocks", "watch"),
    ("dualcap.io", "sites/status", "patch"), ("dualcap.io", "powerbudgets/status", "patch"),
    ("dualcap.io", "computeleases/status", "patch"),
}  # fmt: skip
PEERING = {("kopf.dev", "clusterkopfpeerings", v) for v in ("get", "list", "watch", "patch")}
# The Kueue power check (cluster/kueue.py): informers of Workloads and AdmissionChecks, the
# check's entry applied on a Workload's status, the check's Active condition patched.
KUEUE = {
    ("kueue.x-k8s.io", "workloads", "list"), ("kueue.x-k8s.io", "workloads", "watch"),
    ("kueue.x-k8s.io", "admissionchecks", "list"), ("kueue.x-k8s.io", "admissionchecks", "watch"),
    ("kueue.x-k8s.io", "workloads/status", "patch"),
    ("kueue.x-k8s.io", "admissionchecks/status", "patch"),
}  # fmt: skip


def test_rbac_has_no_wildcard_and_no_unused_grant() -> None:
    for case in ({}, ALL_ON):
        text = json.dumps(by_kind(render(case), "ClusterRole"))
        assert '"*"' not in text
        assert not re.search(
            r'"verbs": \[[^\]]*"(escalate|bind|impersonate|deletecollection)"', text
        )
    assert rules({}) == USED
    assert rules(ALL_ON) == USED | PEERING | KUEUE
    assert rules({"kueue": {"enabled": True}}) == USED | KUEUE


def test_bad_values_are_refused_by_the_schema() -> None:
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema({})
    chart.validate_schema(ALL_ON)
    for bad, where in (
        ({"operator": {"logFormat": "xml"}}, "/operator/logFormat"),
        ({"metrics": {"port": 70000}}, "/metrics/port"),
        ({"replicaCount": "two"}, "/replicaCount"),
        ({"operator": {"watchNamespaces": ["Not_A_Namespace"]}}, "/operator/watchNamespaces/0"),
        ({"peering": {"enabled": "yes"}}, "/peering/enabled"),
        ({"kueue": {"enabled": "yes"}}, "/kueue/enabled"),
        ({"fleet": {"expectedHours": 0}}, "/fleet/expectedHours"),
        ({"metrics": {"alerts": {"unreachableShare": 2}}}, "/metrics/alerts/unreachableShare"),
        ({"unknownKey": 1}, "unknownKey"),
    ):
        with pytest.raises(helm.HelmValuesError, match=re.escape(where)):
            chart.validate_schema(bad)


def test_chart_crds_are_the_generated_ones() -> None:
    for path in (CHART / "crds").glob("*.yaml"):
        assert path.read_text() == (ROOT / "crds" / path.name).read_text()


def test_dockerfile_non_root_wheel_and_the_chart_ports() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"(?m)^FROM ", text)
    final = stages[-1]
    users = re.findall(r"(?m)^USER\s+(\S+)", final)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert re.search(r"pip install [^\n]*--no-index --find-links /dist dualcap", final)
    assert "build" in stages[1].split("\n", 1)[0]  # the wheel is built in its own stage
    assert re.search(r"python -m build --wheel", stages[1])
    assert not re.search(r"(?m)^RUN .*apt-get install", final)  # no build tools at the end
    exposed = {int(p) for line in re.findall(r"(?m)^EXPOSE (.+)$", final) for p in line.split()}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert {values["operator"]["livenessPort"], values["metrics"]["port"]} <= exposed
    assert re.search(r'(?m)^ENTRYPOINT \["dualcap"\]', final)
    assert re.search(r'(?m)^CMD \["run"', final)


def test_plain_manifests_are_the_rendered_chart_and_valid() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("render", ROOT / "tools" / "render_manifests.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    text = (ROOT / "deploy" / "dualcap.yaml").read_text()
    assert text == module.render(), "deploy/dualcap.yaml is stale: run `make manifests`"
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs[0]["kind"] == "Namespace"
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
