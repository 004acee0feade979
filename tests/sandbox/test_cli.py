"""`dualcap-sandbox` (here `python -m dualcap_sandbox`, as the benchmarks start it): serves
the API with the files it was given loaded, and says plainly what it cannot load."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from dualcap_sandbox.app import free_port
from tests.conftest import CRDS, EXAMPLES


def test_serves_what_it_loaded(tmp_path) -> None:
    port, kubeconfig = free_port(), tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dualcap_sandbox", "--port", str(port), "--kubeconfig",
         str(kubeconfig), "--load", str(CRDS), "--load", str(EXAMPLES)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        for _ in range(10):  # "loaded N objects", "sandbox API at ...", "kubeconfig: ..."
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("kubeconfig:") or not line:
                break
        assert any(line.startswith("loaded ") for line in lines), lines
        assert f"sandbox API at http://127.0.0.1:{port}\n" in lines
        assert kubeconfig.exists()
        url = f"http://127.0.0.1:{port}/apis/dualcap.io/v1alpha1/sites"
        with urllib.request.urlopen(url, timeout=10) as resp:
            sites = json.load(resp)
        assert [s["metadata"]["name"] for s in sites["items"]] == ["tx-rockdale-1"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_missing_file_is_one_clear_error(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dualcap_sandbox", "--kubeconfig", str(tmp_path / "k"),
         "--load", str(tmp_path / "absent.yaml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "dualcap-sandbox: error:" in proc.stderr and "absent.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr
