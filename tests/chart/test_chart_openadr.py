"""The OpenADR VEN adapter in the chart: its Deployment, the configuration rendered from the
values (read back by the adapter's own loader), TLS and signing from a Secret, plain HTTP
only when asked for, and least-privilege RBAC - exactly the API calls the adapter's code
makes, found in its source and seen in its traffic against the sandbox API."""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import json
import pkgutil
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from dualcap.signals import openadr
from tests.chart.test_chart import CHART, K8S_VERSION, NAMESPACE, by_kind, helm, render

SITE = {"name": "tx-rockdale-1", "interconnectKW": 45_000, "floorKW": 2_000}
MINIMAL: dict[str, Any] = {
    "openadr": {
        "enabled": True,
        "vtnURL": "https://vtn.aggregator.example/OpenADR2/Simple/2.0b",
        "venName": "dualcap-rockdale",
        "sites": [SITE],
    }
}
FULL: dict[str, Any] = {
    "openadr": {
        "enabled": True,
        "vtnURL": "https://vtn.aggregator.example/OpenADR2/Simple/2.0b",
        "venName": "dualcap-rockdale",
        "venID": "ven-rockdale-1",
        "pollIntervalSeconds": 5,
        "leadTimeSeconds": 300,
        "simpleLevels": {1: 30_000, 2: 15_000, 3: 5_000},
        "sites": [
            {**SITE, "resourceIDs": ["rockdale-1"]},
            {"name": "tx-rockdale-2", "interconnectKW": 20_000, "resourceIDs": ["rockdale-2"]},
        ],
        "tlsSecret": "openadr-tls",
        "signing": {
            "enabled": True,
            "passphraseKey": "passphrase",
            "vtnFingerprint": "AB:CD:EF:01:23:45:67:89:AB:CD",
        },
        "priorityClassName": "system-cluster-critical",
        "tolerations": [{"key": "ops", "operator": "Exists", "effect": "NoSchedule"}],
        "podAnnotations": {"example.com/a": "b"},
        "serviceAccount": {"annotations": {"example.com/role": "x"}},
    }
}
INSECURE: dict[str, Any] = {
    "openadr": {
        "enabled": True,
        "vtnURL": "http://127.0.0.1:8080/OpenADR2/Simple/2.0b",
        "venName": "lab",
        "insecure": True,
        "sites": [SITE],
        "metrics": {"enabled": False},
    }
}
CASES = {"minimal": MINIMAL, "full": FULL, "insecure": INSECURE}
CONFIG_PATH = "/etc/dualcap/openadr/config.yaml"
TLS_DIR = "/etc/dualcap/openadr-tls"


def openadr_docs(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        d
        for d in render(values)
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "openadr"
    ]


def render_error(values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmRenderError) as caught:
        render(values)
    return str(caught.value)


def config_of(values: dict[str, Any], tmp_path: Path) -> openadr.Config:
    """The rendered config.yaml, read by the adapter's own loader."""
    (cm,) = by_kind(openadr_docs(values), "ConfigMap")
    path = tmp_path / "config.yaml"
    path.write_text(cm["data"]["config.yaml"])
    return openadr.load_config(path)


def container(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    (deploy,) = by_kind(openadr_docs(values), "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    return pod, c


def test_off_by_default() -> None:
    assert openadr_docs({}) == []


@pytest.mark.parametrize("case", CASES)
def test_lint_clean_and_every_manifest_valid(case: str) -> None:
    values = CASES[case]
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    docs = openadr_docs(values)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "ServiceAccount",
    ]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    chart = helm.Chart.load(str(CHART))
    for path, text in chart.render(values, name="dualcap", namespace=NAMESPACE).items():
        if "/openadr-" in path and text.strip():
            assert len([d for d in yaml.safe_load_all(text) if d]) == 1, path


def test_one_replica_recreate_restricted_small_and_no_liveness() -> None:
    (deploy,) = by_kind(openadr_docs(MINIMAL), "Deployment")
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    pod, c = container(MINIMAL)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in pod and "hostPID" not in pod
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"] == {"cpu": "10m", "memory": "96Mi"}
    assert c["resources"]["limits"] == {"memory": "256Mi"}
    # the adapter serves no health endpoint: no probe pretends it does
    assert "livenessProbe" not in c and "readinessProbe" not in c
    assert pod["serviceAccountName"] == "dualcap-openadr"
    assert (
        c["image"]
        == by_kind(render(MINIMAL), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
    )  # the operator's image
    # neither Deployment selects the other's pods
    (op,) = [d for d in by_kind(render(MINIMAL), "Deployment") if d is not deploy and
             d["metadata"]["name"] == "dualcap"]  # fmt: skip
    ours = deploy["spec"]["selector"]["matchLabels"]
    theirs = op["spec"]["selector"]["matchLabels"]
    assert ours != theirs
    assert not theirs.items() <= deploy["spec"]["template"]["metadata"]["labels"].items()


def test_args_are_flags_dualcap_openadr_accepts_and_the_metrics_port() -> None:
    from dualcap.cli import build_parser

    for values in CASES.values():
        pod, c = container(values)
        parsed = build_parser().parse_args(c["args"])
        assert parsed.func.__name__ == "_cmd_openadr"
        assert parsed.config == CONFIG_PATH
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        (cm,) = by_kind(openadr_docs(values), "ConfigMap")
        config_volume = volumes[mounts[str(Path(CONFIG_PATH).parent)]]
        assert config_volume["configMap"]["name"] == cm["metadata"]["name"]
        assert Path(CONFIG_PATH).name in cm["data"]
        if values["openadr"].get("metrics", {}).get("enabled", True):
            assert parsed.metrics_port == 9091
            assert c["ports"] == [{"name": "metrics", "containerPort": 9091, "protocol": "TCP"}]
        else:
            assert parsed.metrics_port == 0 and "ports" not in c


def test_the_config_is_what_the_adapter_reads(tmp_path: Path) -> None:
    config = config_of(FULL, tmp_path)
    values = FULL["openadr"]
    assert config.vtn_url == values["vtnURL"] and config.ven_name == values["venName"]
    assert config.ven_id == "ven-rockdale-1"
    assert config.poll_interval_seconds == 5 and config.lead_time_seconds == 300
    assert config.simple_levels == {1: 30_000, 2: 15_000, 3: 5_000}
    assert [(s.name, s.interconnect_kw, s.floor_kw, s.resource_ids) for s in config.sites] == [
        ("tx-rockdale-1", 45_000, 2_000, ("rockdale-1",)),
        ("tx-rockdale-2", 20_000, None, ("rockdale-2",)),
    ]
    assert config.insecure is False
    assert config.tls is not None and config.tls.check_hostname is True
    assert config.tls.ca_file == f"{TLS_DIR}/ca.crt"
    assert (config.tls.cert_file, config.tls.key_file) == (
        f"{TLS_DIR}/tls.crt",
        f"{TLS_DIR}/tls.key",
    )
    assert config.signing is not None
    assert (config.signing.cert_file, config.signing.key_file) == (
        f"{TLS_DIR}/tls.crt",
        f"{TLS_DIR}/tls.key",
    )
    assert config.signing.passphrase_file == f"{TLS_DIR}/passphrase"
    assert config.signing.vtn_fingerprint == "AB:CD:EF:01:23:45:67:89:AB:CD"
    # the defaults of the chart are the adapter's defaults
    minimal = config_of(MINIMAL, tmp_path)
    bare = openadr.Config.model_validate(
        {"vtnURL": MINIMAL["openadr"]["vtnURL"], "venName": "dualcap-rockdale", "sites": [SITE]}
    )
    assert minimal.model_dump(exclude={"tls"}) == bare.model_dump(exclude={"tls"})
    assert minimal.tls == openadr.TlsConfig()  # no Secret: the system CAs, no client cert
    assert minimal.signing is None


def test_the_secret_is_mounted_read_only_and_holds_every_file_the_config_names(
    tmp_path: Path,
) -> None:
    pod, c = container(FULL)
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == TLS_DIR]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"] == {"secretName": "openadr-tls", "defaultMode": 0o440}
    config = config_of(FULL, tmp_path)
    assert config.tls is not None and config.signing is not None
    named = [
        config.tls.ca_file,
        config.tls.cert_file,
        config.tls.key_file,
        config.signing.cert_file,
        config.signing.key_file,
        config.signing.passphrase_file,
    ]
    assert all(str(p).startswith(f"{TLS_DIR}/") for p in named)
    assert "openadr-tls" not in json.dumps(by_kind(openadr_docs(MINIMAL), "Deployment"))
    _, bare = container(MINIMAL)
    assert TLS_DIR not in {m["mountPath"] for m in bare["volumeMounts"]}


def test_plain_http_is_refused_without_the_explicit_flag(tmp_path: Path) -> None:
    plain = {"openadr": {**INSECURE["openadr"], "insecure": False}}
    message = render_error(plain)
    assert "openadr.vtnURL http://127.0.0.1:8080/OpenADR2/Simple/2.0b is plain http://" in message
    assert "openadr.insecure: true" in message
    unset = {"openadr": {k: v for k, v in INSECURE["openadr"].items() if k != "insecure"}}
    assert "is plain http://" in render_error(unset)
    # with the flag: rendered, and the adapter accepts it; without, the adapter agrees
    config = config_of(INSECURE, tmp_path)
    assert config.insecure is True and config.tls is None
    (cm,) = by_kind(openadr_docs(INSECURE), "ConfigMap")
    doc = yaml.safe_load(cm["data"]["config.yaml"])
    doc["insecure"] = False
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(openadr.ConfigError, match="plain http"):
        openadr.load_config(tmp_path / "plain.yaml")


def test_incomplete_values_fail_with_a_clear_message() -> None:
    base = MINIMAL["openadr"]
    for change, message in (
        ({"vtnURL": ""}, "openadr.vtnURL is required"),
        ({"venName": ""}, "openadr.venName is required"),
        ({"sites": []}, "openadr.sites needs at least one site"),
        ({"signing": {"enabled": True}}, "openadr.signing.enabled needs openadr.tlsSecret"),
    ):
        assert message in render_error({"openadr": {**base, **change}}), change


def test_bad_openadr_values_are_refused_by_the_schema() -> None:
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema(FULL)
    chart.validate_schema(INSECURE)
    for bad, where in (
        ({"openadr": {"enabled": "yes"}}, "/openadr/enabled"),
        ({"openadr": {"vtnURL": "ftp://vtn"}}, "/openadr/vtnURL"),
        ({"openadr": {"pollIntervalSeconds": 0}}, "/openadr/pollIntervalSeconds"),
        ({"openadr": {"simpleLevels": {"4": 100}}}, "invalid propertyName '4'"),
        ({"openadr": {"simpleLevels": {"1": -5}}}, "/openadr/simpleLevels/1"),
        ({"openadr": {"sites": [{"name": "Not_A_Name", "interconnectKW": 1}]}}, "/openadr/sites/0/name"),
        ({"openadr": {"sites": [{"name": "a"}]}}, "/openadr/sites/0"),
        ({"openadr": {"sites": [{"name": "a", "interconnectKW": 0}]}}, "/openadr/sites/0/interconnectKW"),
        ({"openadr": {"metrics": {"port": 70000}}}, "/openadr/metrics/port"),
        ({"openadr": {"unknown": 1}}, "unknown"),
    ):  # fmt: skip
        with pytest.raises(helm.HelmValuesError, match=re.escape(where)):
            chart.validate_schema(bad)


# --- RBAC: what the adapter's code calls ---------------------------------------------------------

CLIENT_METHODS = {"request": None, "create": "POST", "patch": "PATCH", "delete": "DELETE"}
VERBS = {("GET", True): "get", ("GET", False): "list", ("POST", False): "create",
         ("PATCH", True): "patch", ("PUT", True): "update", ("DELETE", True): "delete",
         ("DELETE", False): "deletecollection"}  # fmt: skip


def calls_in_code() -> set[tuple[str, str, str, str]]:
    """(group, resource, verb, name expression) of every Kubernetes API call in the
    adapter's modules, read from their source: the client's methods called on ``client`` or
    ``self.client``, their paths built from the module's API path constants."""
    from dualcap.signals.openadr import names

    modules = [m for m in pkgutil.iter_modules(openadr.__path__) if m.name != "names"]
    source = "\n".join(
        inspect.getsource(importlib.import_module(f"{openadr.__name__}.{m.name}")) for m in modules
    )
    tree = ast.parse(source)
    paths = {
        name: value
        for name, value in vars(names).items()
        if isinstance(value, str) and value.startswith(("/api/", "/apis/"))
    }
    assert set(paths) == {"BUDGETS", "SITES"}
    literals = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and "/api" in n.value
    ]
    assert literals == []  # no API path outside the constants of openadr/names.py
    found: set[tuple[str, str, str, str]] = set()
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        local = {
            n.targets[0].id: n.value
            for n in ast.walk(fn)
            if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
        }
        for call in ast.walk(fn):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            if ast.unparse(call.func.value) not in ("client", "self.client"):
                continue
            method_name = call.func.attr
            if method_name == "close":
                continue
            assert method_name in CLIENT_METHODS, f"unknown client call {ast.unparse(call)}"
            if method_name == "request":
                method = call.args[0]
                assert isinstance(method, ast.Constant), ast.unparse(call)
                verb_method, path = str(method.value), call.args[1]
            else:
                verb_method, path = str(CLIENT_METHODS[method_name]), call.args[0]
            if isinstance(path, ast.Name) and path.id in local:
                path = local[path.id]
            found.add(_resource(path, paths, verb_method))
    return found


def _resource(path: ast.expr, constants: dict[str, str], method: str) -> tuple[str, str, str, str]:
    if isinstance(path, ast.Name):
        base, rest = constants[path.id], ""
    else:
        assert isinstance(path, ast.JoinedStr), ast.unparse(path)
        head, *tail = path.values
        assert isinstance(head, ast.FormattedValue) and isinstance(head.value, ast.Name)
        base = constants[head.value.id]
        rest = "".join(
            v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}"
            for v in tail
        )
    group = base.split("/")[2] if base.startswith("/apis/") else ""
    plural = base.rsplit("/", 1)[1]
    parts = [p for p in rest.split("/") if p]
    assert len(parts) <= 2, rest
    name = parts[0] if parts else ""
    resource = f"{plural}/{parts[1]}" if len(parts) == 2 else plural
    return group, resource, VERBS[(method, bool(name))], name


def granted(values: dict[str, Any]) -> dict[tuple[str, str, str], list[str]]:
    """(group, resource, verb) -> the names it is limited to ([]: any)."""
    (role,) = by_kind(openadr_docs(values), "ClusterRole")
    out: dict[tuple[str, str, str], list[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert (group, resource, verb) not in out, "granted twice"
                    out[(group, resource, verb)] = list(rule.get("resourceNames") or [])
    return out


def test_the_calls_found_in_the_code() -> None:
    # The derivation itself, checked once by hand against the module: a budget read,
    # created and patched by name, a Site read by name; nothing listed, watched or deleted.
    assert calls_in_code() == {
        ("dualcap.io", "powerbudgets", "get", "{budget_name(site.name)}"),
        ("dualcap.io", "powerbudgets", "get", "{name}"),
        ("dualcap.io", "powerbudgets", "create", ""),
        ("dualcap.io", "powerbudgets", "patch", "{name}"),
        ("dualcap.io", "sites", "get", "{site.name}"),
    }


def test_rbac_is_exactly_what_the_code_calls() -> None:
    for values in CASES.values():
        rules = granted(values)
        assert set(rules) == {(g, r, v) for g, r, v, _ in calls_in_code()}
        assert '"*"' not in json.dumps(by_kind(openadr_docs(values), "ClusterRole"))
        sites = [s["name"] for s in values["openadr"]["sites"]]
        # every call by name is limited to the names the adapter uses; a create cannot be
        rules_by_name = {k: v for k, v in rules.items() if k[2] != "create"}
        assert rules_by_name == {
            ("dualcap.io", "sites", "get"): sites,
            ("dualcap.io", "powerbudgets", "get"): [openadr.budget_name(s) for s in sites],
            ("dualcap.io", "powerbudgets", "patch"): [openadr.budget_name(s) for s in sites],
        }
        assert rules[("dualcap.io", "powerbudgets", "create")] == []
    docs = openadr_docs(MINIMAL)
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    (sa,) = by_kind(docs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert binding["roleRef"]["name"] == by_kind(docs, "ClusterRole")[0]["metadata"]["name"]
    # the operator's own role is the same with the adapter on or off
    (op_on,) = [r for r in by_kind(render(MINIMAL), "ClusterRole") if r not in docs]
    (op_off,) = by_kind(render({}), "ClusterRole")
    assert op_on == op_off


def test_no_rbac_and_an_existing_service_account() -> None:
    values = {
        "rbac": {"create": False},
        "openadr": {**MINIMAL["openadr"], "serviceAccount": {"create": False, "name": "ven"}},
    }
    docs = openadr_docs(values)
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment"]
    pod, _ = container(values)
    assert pod["serviceAccountName"] == "ven"


async def test_rbac_is_exactly_what_the_adapter_sends(cluster, vtn) -> None:
    """The adapter's traffic against the sandbox across a registration, an event, its
    modification and its cancellation: every request inside the chart's role, every
    grant used."""
    from tests.peers.vtn import load_dispatch

    site = "tx-rockdale-1"  # the example Site loaded in the sandbox
    config = openadr.Config.model_validate(
        {
            "vtnURL": vtn.url,
            "venName": "dualcap-rockdale",
            "insecure": True,
            "pollIntervalSeconds": 0.2,
            "sites": [{"name": site, "interconnectKW": 45_000, "floorKW": 2_000}],
        }
    )
    sb = cluster.sb
    sb.api.audit.by_agent.clear()
    budgets = sb.store.rt("dualcap.io", "powerbudgets")

    def limits() -> list[float]:
        budget = sb.store.get(budgets, None, openadr.budget_name(site))  # type: ignore[arg-type]
        return [e["limitKW"] for e in ((budget or {}).get("spec") or {}).get("events") or []]

    async def until(check: Any, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + 15
        while not check():
            assert asyncio.get_running_loop().time() < deadline, what
            await asyncio.sleep(0.05)

    adapter = openadr.Adapter(config, cluster.client)
    stop = asyncio.Event()
    task = asyncio.create_task(adapter.run(stop))
    try:
        start = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)
        vtn.send(load_dispatch("ers-1", start, 60, 12_000))
        await until(lambda: limits() == [12_000], "the event")
        vtn.send(load_dispatch("ers-1", start, 90, 8_000, modification=1))
        await until(lambda: limits() == [8_000], "the modification")
        vtn.send(load_dispatch("ers-1", start, 90, 8_000, modification=2, status="cancelled"))
        await until(lambda: limits() == [], "the cancellation")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    sent = {
        (group, f"{plural}/{sub}" if sub else plural, verb)
        for (agent, verb, group, plural, sub, namespaced), _n in sb.api.audit.by_agent.items()
        if agent == "dualcap"
    }
    assert not any(
        namespaced for (agent, *_, namespaced) in sb.api.audit.by_agent if agent == "dualcap"
    )
    assert sent == set(granted(MINIMAL))
