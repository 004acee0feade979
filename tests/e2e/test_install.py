"""Installing dualcap as users do, judged by the real apiserver: the CRDs (structural
schemas, CEL rules within the cost budget), every example, and rejected bad input."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import CRDS, ROOT, Cluster

pytestmark = pytest.mark.e2e


def test_the_crds_are_accepted_and_established(cluster: Cluster, crds: None) -> None:
    for name in CRDS:
        crd = json.loads(cluster.kubectl("get", f"crd/{name}.dualcap.io", "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        # NonStructuralSchema would mean pruning and defaulting do not apply.
        assert conditions.get("Established") == "True", conditions
        assert "NonStructuralSchema" not in conditions, conditions


def test_every_example_is_accepted(cluster: Cluster, crds: None) -> None:
    examples = sorted(str(p) for p in ROOT.glob("examples/*.yaml"))
    args = [a for f in examples for a in ("-f", f)]
    cluster.kubectl("apply", "--server-side", "--field-manager=e2e", *args)
    try:
        site = json.loads(cluster.kubectl("get", "site/tx-rockdale-1", "-o", "json").stdout)
        # Defaults come from the CRD's structural schema, applied by the apiserver itself.
        assert site["spec"]["behavior"]["onDelete"] in ("Release", "Retain")
    finally:
        cluster.kubectl("delete", "--wait=false", "--ignore-not-found", *args)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            {"kind": "PowerBudget", "metadata": {"name": "e2e-bad-limit"},
             "spec": {"siteRef": "x", "limitKW": -5}},
            "limitKW",
        ),
        (
            {"kind": "ComputeLease", "metadata": {"name": "e2e-bad-split", "namespace": "default"},
             "spec": {"siteRef": "x", "gpus": 3, "gpusPerPod": 2,
                      "template": {"spec": {"containers": [{"name": "m", "image": "x"}]}}}},
            "gpusPerPod",
        ),
    ],
)  # fmt: skip
def test_bad_input_is_refused_by_the_crd(
    cluster: Cluster, crds: None, manifest: dict[str, object], message: str
) -> None:
    body = json.dumps({"apiVersion": "dualcap.io/v1alpha1", **manifest})
    r = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=body, check=False)
    assert r.returncode != 0, f"accepted: {body}"
    assert message in r.stderr, r.stderr
