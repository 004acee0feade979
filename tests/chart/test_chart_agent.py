"""The miner agent in the chart: its DaemonSet, least-privilege RBAC, credentials Secret
and the ValidatingAdmissionPolicy that ties each write to the node in the agent's token -
rendered by Helm's own engine, validated, and the policy's CEL run on sample requests."""

from __future__ import annotations

import json
import re
from typing import Any

import celpy
import kubernetes_validate
import pytest
from celpy import celtypes
from celpy.adapter import json_to_cel

from tests.chart.test_chart import CHART, K8S_VERSION, NAMESPACE, by_kind, helm, render

AGENT: dict[str, Any] = {"agent": {"enabled": True}}
AGENT_ALL: dict[str, Any] = {
    "agent": {
        "enabled": True,
        "interval": 5,
        "logLevel": "debug",
        "extraArgs": ["--miner-timeout=4"],
        "tolerations": [{"key": "ops", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "system-node-critical",
        "credentials": {
            "logins": {
                "luxos": {"username": "root", "password": "pw1"},
                "braiinsos": {"username": "admin"},
            }
        },
    }
}
AGENT_CASES = {"agent": AGENT, "agent-all": AGENT_ALL}
SA = f"system:serviceaccount:{NAMESPACE}:dualcap-agent"
NODE_NAME = "authentication.kubernetes.io/node-name"


def agent_docs(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        d
        for d in render(values)
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "agent"
    ]


def test_off_by_default() -> None:
    assert agent_docs({}) == []


@pytest.mark.parametrize("case", AGENT_CASES)
def test_lint_clean_and_every_manifest_valid(case: str) -> None:
    values = AGENT_CASES[case]
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    docs = agent_docs(values)
    kinds = sorted(d["kind"] for d in docs)
    expected = [
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    assert kinds == sorted(expected + (["Secret"] if case == "agent-all" else []))
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    chart = helm.Chart.load(str(CHART))
    for path, text in chart.render(values, name="dualcap", namespace=NAMESPACE).items():
        if "/agent-" in path and text.strip():
            assert text.count("\nkind: ") == 1, path  # one resource per template file


def test_daemonset_on_asic_nodes_through_curtailment_restricted_and_small() -> None:
    (ds,) = by_kind(agent_docs(AGENT), "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"dualcap.io/role": "asic"}
    assert {"key": "dualcap.io/curtailed", "operator": "Exists", "effect": "NoExecute"} in pod[
        "tolerations"
    ]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in pod and "hostPID" not in pod
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    requests = container["resources"]["requests"]
    assert requests["cpu"] == "20m" and requests["memory"] == "64Mi"
    assert container["resources"]["limits"]["memory"] == "128Mi"
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["TOKIO_WORKER_THREADS"]["value"] == "2"
    assert pod["serviceAccountName"] == "dualcap-agent"
    # the operator's Deployment does not select the agent's pods, nor the reverse
    (deploy,) = by_kind(render(AGENT), "Deployment")
    op = deploy["spec"]["selector"]["matchLabels"]
    agent = ds["spec"]["selector"]["matchLabels"]
    assert op != agent and not op.items() <= ds["spec"]["template"]["metadata"]["labels"].items()


def test_args_are_flags_dualcap_agent_accepts() -> None:
    from dualcap.agent import run
    from dualcap.cli import build_parser

    for values in AGENT_CASES.values():
        (ds,) = by_kind(agent_docs(values), "DaemonSet")
        args = ds["spec"]["template"]["spec"]["containers"][0]["args"]
        parsed = build_parser().parse_args(args)
        assert parsed.func is run
    (ds,) = by_kind(agent_docs(AGENT_ALL), "DaemonSet")
    args = ds["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--interval=5" in args and "--verbose" in args and "--miner-timeout=4" in args


def test_credentials_secret_from_values_or_an_existing_one() -> None:
    docs = agent_docs(AGENT_ALL)
    (secret,) = by_kind(docs, "Secret")
    assert secret["stringData"] == {
        "luxos.username": "root",
        "luxos.password": "pw1",
        "braiinsos.username": "admin",
        "braiinsos.password": "",
    }
    (ds,) = by_kind(docs, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert volumes["credentials"]["secret"]["defaultMode"] == 0o440
    assert "--credentials=/etc/dualcap/credentials" in pod["containers"][0]["args"]
    assert "pw1" not in json.dumps(ds)  # the password is in the Secret only

    existing = {"agent": {"enabled": True, "credentials": {"existingSecret": "miner-logins"}}}
    docs = agent_docs(existing)
    assert not by_kind(docs, "Secret")
    (ds,) = by_kind(docs, "DaemonSet")
    vols = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
    assert vols["credentials"]["secret"]["secretName"] == "miner-logins"

    (ds,) = by_kind(agent_docs(AGENT), "DaemonSet")  # no logins: nothing mounted
    assert "credentials" not in {v["name"] for v in ds["spec"]["template"]["spec"]["volumes"]}


def agent_rules(values: dict[str, Any]) -> set[tuple[str, str, str]]:
    (role,) = by_kind(agent_docs(values), "ClusterRole")
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


AGENT_USED = {
    ("", "nodes", "get"), ("", "nodes", "list"), ("", "nodes", "watch"),
    ("dualcap.io", "minerblocks", "get"), ("dualcap.io", "minerblocks", "create"),
    ("dualcap.io", "minerblocks", "update"), ("dualcap.io", "minerblocks", "patch"),
    ("dualcap.io", "minerblocks/status", "update"), ("dualcap.io", "minerblocks/status", "patch"),
    ("", "events", "create"),
}  # fmt: skip


def test_agent_rbac_least_privilege() -> None:
    docs = agent_docs(AGENT)
    assert '"*"' not in json.dumps(by_kind(docs, "ClusterRole"))
    assert agent_rules(AGENT) == AGENT_USED
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    (sa,) = by_kind(docs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert binding["roleRef"]["name"] == by_kind(docs, "ClusterRole")[0]["metadata"]["name"]
    # the operator's own role only reads the agents' reports, whether agents run or not
    (op_role,) = [r for r in by_kind(render(AGENT), "ClusterRole") if r not in docs]
    blocks = [r for r in op_role["rules"] if "minerblocks" in r["resources"]]
    assert [sorted(r["verbs"]) for r in blocks] == [["list", "watch"]]


def test_bad_agent_values_are_refused_by_the_schema() -> None:
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema(AGENT_ALL)
    for bad, where in (
        ({"agent": {"interval": 0}}, "/agent/interval"),
        ({"agent": {"logLevel": "trace"}}, "/agent/logLevel"),
        ({"agent": {"credentials": {"logins": {"LuxOS!": {"username": "x"}}}}}, "LuxOS!"),
        ({"agent": {"credentials": {"logins": {"luxos": {"password": "x"}}}}}, "luxos"),
        ({"agent": {"enabled": "yes"}}, "/agent/enabled"),
        ({"agent": {"unknown": 1}}, "unknown"),
    ):
        with pytest.raises(helm.HelmValuesError, match=re.escape(where)):
            chart.validate_schema(bad)


# --- the admission policy's CEL, on sample requests ---------------------------------------------

_ENV = celpy.Environment()


def _eval(expression: str, activation: dict[str, Any]) -> Any:
    program = _ENV.program(_ENV.compile(expression))
    return program.evaluate(activation)


def admit(policy: dict[str, Any], request: dict[str, Any], obj: Any, old: Any = None) -> list[str]:
    """What the API server does with the policy: [] when admitted, else the messages of
    the failed validations; None when the policy does not apply (a match condition fails)."""
    base = {
        "request": json_to_cel(request),
        "object": json_to_cel(obj),
        "oldObject": json_to_cel(old),
    }
    spec = policy["spec"]
    for cond in spec["matchConditions"]:
        if not bool(_eval(cond["expression"], base)):
            return ["not-matched"]
    variables = celtypes.MapType({})
    for var in spec["variables"]:
        value = _eval(var["expression"], {**base, "variables": variables})
        variables = celtypes.MapType({**variables, celtypes.StringType(var["name"]): value})
    activation = {**base, "variables": variables}
    failed = []
    for rule in spec["validations"]:
        if not bool(_eval(rule["expression"], activation)):
            if "messageExpression" in rule:
                failed.append(str(_eval(rule["messageExpression"], activation)))
            else:
                failed.append(rule["message"])
    return failed


def _request(user: str, extra: dict[str, list[str]] | None, op: str = "UPDATE") -> dict[str, Any]:
    info: dict[str, Any] = {"username": user, "groups": ["system:serviceaccounts"]}
    if extra is not None:
        info["extra"] = extra
    return {"operation": op, "userInfo": info, "resource": {"resource": "minerblocks"}}


def _block(name: str, node: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "MinerBlock",
        "metadata": {"name": name},
        "spec": {"nodeName": node or name},
    }


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    (vap,) = by_kind(agent_docs(AGENT), "ValidatingAdmissionPolicy")
    (binding,) = by_kind(agent_docs(AGENT), "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == vap["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert vap["spec"]["failurePolicy"] == "Fail"
    (rule,) = vap["spec"]["matchConstraints"]["resourceRules"]
    assert set(rule["resources"]) == {"minerblocks", "minerblocks/status"}
    return vap


def test_policy_allows_an_agent_its_own_node(policy) -> None:
    own = {NODE_NAME: ["asic-007"], "authentication.kubernetes.io/pod-name": ["agent-x"]}
    assert admit(policy, _request(SA, own, "CREATE"), _block("asic-007")) == []
    assert admit(policy, _request(SA, own), _block("asic-007"), _block("asic-007")) == []


def test_policy_denies_another_node(policy) -> None:
    own = {NODE_NAME: ["asic-007"]}
    failed = admit(policy, _request(SA, own), _block("asic-008"), _block("asic-008"))
    assert failed[0] == "the agent of node asic-007 may write only MinerBlock asic-007"
    failed = admit(policy, _request(SA, own, "CREATE"), _block("asic-008"))
    assert failed and "asic-007" in failed[0]


def test_policy_denies_a_name_and_node_that_disagree(policy) -> None:
    own = {NODE_NAME: ["asic-007"]}
    failed = admit(policy, _request(SA, own, "CREATE"), _block("asic-007", node="asic-008"))
    assert failed == ["spec.nodeName must be the agent's own node"]


def test_policy_denies_a_token_without_a_node(policy) -> None:
    for extra in (None, {}, {NODE_NAME: []}, {NODE_NAME: ["a", "b"]}):
        failed = admit(policy, _request(SA, extra), _block("asic-007"), _block("asic-007"))
        assert failed and "names no node" in failed[0], extra


def test_policy_leaves_everyone_else_alone(policy) -> None:
    other = "system:serviceaccount:dualcap-system:dualcap"  # the operator, a person, ...
    assert admit(policy, _request(other, None), _block("asic-008")) == ["not-matched"]
    assert admit(policy, _request("alice@example.com", {}), _block("x")) == ["not-matched"]
