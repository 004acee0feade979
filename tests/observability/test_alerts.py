"""dualcap's alerts: the chart's PrometheusRule, rendered by Helm's engine, checked with
`promtool check rules` and unit-tested with `promtool test rules` (alerts.test.yaml: for
every alert, series that fire it and series that must not); every metric a rule or the
dashboard reads is one dualcap exports, and every alert links to its runbook entry."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.test_chart import render

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNBOOK = ROOT / "docs" / "runbook.md"
DASHBOARD = ROOT / "charts" / "dualcap" / "dashboards" / "dualcap.json"
UNPACKED = ROOT / "build" / "prometheus" / "usr" / "bin" / "promtool"
SEVERITIES = {"critical", "warning", "info"}
# Series a rule may read that dualcap does not export: Prometheus's own
NOT_OURS = {"up"}
ON = {"metrics": {"alerts": {"enabled": True}}}


def promtool() -> Path:
    for candidate in ("/usr/bin/promtool", UNPACKED, shutil.which("promtool")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.skip("no promtool: `make test` installs Debian's prometheus package (or unpacks it)")


def rule_groups(values: dict[str, Any]) -> list[dict[str, Any]]:
    (rule,) = [d for d in render(values) if d["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def alerts(values: dict[str, Any] = ON) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rule_groups(values) for r in g["rules"]}


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_rules_parse_and_their_unit_tests_pass(tmp_path: Path) -> None:
    tool = promtool()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(ON)}))
    shutil.copy(HERE / "alerts.test.yaml", tmp_path)
    checked = run(tool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in checked.stdout
    tested = run(tool, "test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_rule_that_does_not_parse_or_a_wrong_expectation_is_caught(tmp_path: Path) -> None:
    """The checks above are live: promtool refuses a broken expression, and a unit test
    expecting what a rule does not do fails."""
    tool = promtool()
    groups = rule_groups(ON)
    groups[0]["rules"][0]["expr"] = "max by (site (dualcap_site_limit_watts)"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    checked = run(tool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode != 0 and "parse error" in (checked.stdout + checked.stderr)

    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(ON)}))
    wrong = (HERE / "alerts.test.yaml").read_text().replace("draws 1.1kW", "draws 9.9kW")
    (tmp_path / "alerts.test.yaml").write_text(wrong)
    tested = run(tool, "test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert tested.returncode != 0 and "FAILED" in tested.stdout + tested.stderr


def test_every_alert_is_tested_both_ways() -> None:
    cases = yaml.safe_load((HERE / "alerts.test.yaml").read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert set(alerts()) == fires == quiet


def test_every_alert_has_a_severity_a_summary_naming_its_site_and_a_runbook_entry() -> None:
    headings = {
        "#" + re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for name, rule in alerts().items():
        assert name.startswith("Dualcap"), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], name
        # per-site alerts name their site; the fleet-wide ones group by nothing site-bound
        if "by (site" in rule["expr"]:
            assert "$labels.site" in notes["summary"], name
        url = notes["runbook_url"]
        assert url.startswith("https://github.com/dualcap/dualcap/blob/main/docs/runbook.md#")
        assert url[url.index("#") :] == f"#{name.lower()}" and f"#{name.lower()}" in headings, name


def test_the_settings_reach_the_rules() -> None:
    tuned = alerts({"metrics": {"alerts": {
        "enabled": True, "overEnvelopeFor": "10m", "unreachableShare": 0.3,
        "powerWaitSeconds": 600, "vtnSilentSeconds": 120, "labels": {"release": "kps"},
        "runbookURL": "https://wiki.example/dualcap",
    }}})  # fmt: skip
    assert tuned["DualcapSiteOverEnvelope"]["for"] == "10m"
    assert tuned["DualcapMinersUnreachable"]["expr"].endswith("> 0.3")
    assert tuned["DualcapPowerWaitTooLong"]["expr"].endswith("> 600")
    assert tuned["DualcapOpenADRSilent"]["expr"].endswith("> 120")
    assert tuned["DualcapOperatorDown"]["annotations"]["runbook_url"] == (
        "https://wiki.example/dualcap#dualcapoperatordown"
    )
    (rule,) = [
        d for d in render({"metrics": {"alerts": {"enabled": True, "labels": {"release": "kps"}}}})
        if d["kind"] == "PrometheusRule"
    ]  # fmt: skip
    assert rule["metadata"]["labels"]["release"] == "kps"
    # off by default, and off with the metrics
    assert not [d for d in render({}) if d["kind"] == "PrometheusRule"]
    off = {"metrics": {"enabled": False, "alerts": {"enabled": True}}}
    assert not [d for d in render(off) if d["kind"] == "PrometheusRule"]


# --- the metric names ---------------------------------------------------------------------

METRIC = re.compile(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[|\)|$|\s*[<>=!]|\s+-|\s+or\b|\s*\*)")
FUNCTIONS = {"max", "sum", "count", "absent", "rate", "increase", "histogram_quantile", "by", "on", "or"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The series names an expression reads (identifiers followed by a selector, range,
    operator or the end; functions, keywords and label names excluded)."""
    inside_braces = re.sub(r"\{[^}]*\}", "{}", expr)
    inside_by = re.sub(r"\b(by|on)\s*\([^)]*\)", "", inside_braces)
    return {m for m in METRIC.findall(inside_by) if m not in FUNCTIONS}


def exported() -> set[str]:
    """Every sample name the operator and the OpenADR adapter export."""
    from dualcap.cluster.metrics import Metrics
    from dualcap.signals.freshness import SignalAge
    from dualcap.signals.openadr.config import Config
    from dualcap.signals.openadr.ven import Adapter

    metrics = Metrics(lambda: datetime.now(UTC))
    SignalAge(metrics.registry)
    config = Config.model_validate({
        "vtnURL": "http://127.0.0.1:1/OpenADR2/Simple/2.0b", "venName": "v", "insecure": True,
        "sites": [{"name": "s", "interconnectKW": 1}],
    })  # fmt: skip
    adapter = Adapter(config, None)
    names: set[str] = set()
    for registry in (metrics.registry, adapter.metrics.registry):
        for family in registry.collect():
            names.add(family.name)
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
            names.update(family.name + s for s in suffixes.get(family.type, ()))
    return names


def dashboard_exprs() -> list[str]:
    import json

    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(DASHBOARD.read_text()))
    return found


def test_every_metric_a_rule_or_the_dashboard_reads_is_exported() -> None:
    ours = exported()
    exprs = [r["expr"] for r in alerts().values()] + dashboard_exprs()
    assert len(exprs) > 30
    read = set().union(*(metric_names(e) for e in exprs))
    assert {"dualcap_site_limit_watts", "dualcap_envelope_compliance_seconds_bucket", "up"} <= read
    assert read - NOT_OURS <= ours, sorted(read - NOT_OURS - ours)
    # and the check is live: a misspelt name is caught
    assert metric_names('max by (site) (dualcap_site_limt_watts{site="a"}) > 1') - ours
