"""`dualcap plan`: the stable JSON (README, Planning offline), the table, and clear errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from dualcap.cli import main
from tests.conftest import EXAMPLES, example_objects

AT = "2026-07-14T15:00:00Z"
STABLE_KEYS = [
    "name", "limitKW", "committedKW", "plannedKW", "curtail", "resume", "admit", "preempt",
    "running", "mining", "revenueUSDPerHour", "energyCostUSDPerHour",
]  # fmt: skip


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_is_the_stable_interface(capsys) -> None:
    code, out, _ = run_cli(capsys, "plan", "--snapshot", str(EXAMPLES), "--at", AT, "-o", "json")
    assert code == 0
    doc = json.loads(out)
    assert list(doc) == ["at", "sites"] and doc["at"] == AT
    (s,) = doc["sites"]
    assert list(s)[: len(STABLE_KEYS)] == STABLE_KEYS
    assert s["name"] == "tx-rockdale-1"
    assert s["limitKW"] == 49_500
    assert s["curtail"] == ["asic-c25"]  # the least efficient controller makes room
    assert s["resume"] == [] and s["preempt"] == []
    assert {(a["namespace"], a["name"], a["gpus"]) for a in s["admit"]} == {
        ("acme", "llm-inference", 16),
        ("research", "batch-training", 32),
    }
    assert s["running"] == s["admit"] or sorted(map(str, s["running"])) == sorted(
        map(str, s["admit"])
    )
    assert len(s["mining"]) == 24
    assert set(s["revenueUSDPerHour"]) == {"mining", "leases"}
    assert s["plannedKW"] <= s["limitKW"] < s["committedKW"]
    for lease_ref in s["admit"]:
        assert set(lease_ref) == {"namespace", "name", "gpus"}


def test_table_is_for_people(capsys) -> None:
    code, out, _ = run_cli(capsys, "plan", "-f", str(EXAMPLES), "--at", "2026-07-14T19:30:00Z")
    assert code == 0
    assert "Site tx-rockdale-1" in out
    assert "event ers-0714" in out and "window summer-peak" in out
    assert "7,500 kW" in out  # 8 MW event less the 500 kW margin
    assert "Unprofitable" in out  # 140 USD/MWh at peak: mining does not pay


def test_reads_a_kubectl_list_and_typed_lists(tmp_path, capsys) -> None:
    objects = example_objects()
    nodes = [o for o in objects if o["kind"] == "Node"]
    others = [o for o in objects if o["kind"] != "Node"]
    # kubectl get -o yaml prints a List; the raw API returns NodeList items without kind.
    doc = {"apiVersion": "v1", "kind": "List", "items": others}
    node_list = {
        "apiVersion": "v1",
        "kind": "NodeList",
        "items": [{k: v for k, v in n.items() if k != "kind"} for n in nodes],
    }
    path = tmp_path / "snap.yaml"
    path.write_text(yaml.safe_dump_all([doc, node_list]))
    code, out, _ = run_cli(capsys, "plan", "-f", str(path), "--at", AT, "-o", "json")
    assert code == 0
    assert len(json.loads(out)["sites"][0]["mining"]) == 24


BAD = {
    "unparsable": ("kind: Site\n  - : :\n\t", "not valid YAML"),
    "not-objects": ("- a\n- b\n", "expected Kubernetes objects"),
    "no-site": ("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", "no Site found"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_get_one_line_and_exit_2(case, tmp_path, capsys) -> None:
    text, message = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = run_cli(capsys, "plan", "-f", str(path))
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def _examples_with(tmp_path, change) -> str:
    objects = example_objects()
    change(objects)
    path = tmp_path / "snap.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    return str(path)


def test_invalid_spec_is_named(tmp_path, capsys) -> None:
    def break_budget(objects):
        next(o for o in objects if o["kind"] == "PowerBudget")["spec"]["limitKW"] = -1

    code, _, err = run_cli(capsys, "plan", "-f", _examples_with(tmp_path, break_budget))
    assert code == 2
    assert "PowerBudget tx-rockdale-1" in err and "limitKW" in err and err.count("\n") == 1


def test_lease_for_an_unknown_site(tmp_path, capsys) -> None:
    def move_lease(objects):
        next(o for o in objects if o["kind"] == "ComputeLease")["spec"]["siteRef"] = "nowhere"

    code, _, err = run_cli(capsys, "plan", "-f", _examples_with(tmp_path, move_lease))
    assert code == 2 and "no Site 'nowhere'" in err


def test_unknown_site_and_bad_time(capsys) -> None:
    code, _, err = run_cli(capsys, "plan", "-f", str(EXAMPLES), "--site", "nope")
    assert code == 2 and "unknown site 'nope'" in err
    code, _, err = run_cli(capsys, "plan", "-f", str(EXAMPLES), "--at", "noon")
    assert code == 2 and "RFC 3339" in err
    code, _, err = run_cli(capsys, "plan", "-f", "/does/not/exist")
    assert code == 2 and "no such file" in err


def test_the_console_script_runs() -> None:
    """The installed `dualcap` entry point, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "dualcap", "plan", "-f", str(EXAMPLES), "--at", AT, "-o", "json"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["sites"][0]["name"] == "tx-rockdale-1"
