"""The generated CRDs: valid for Kubernetes, structural, documented, and not stale."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from dualcap.api.crd import RESOURCES, all_crds, render_files
from tests.conftest import CRDS, ROOT, load_docs

K8S_VERSION = "1.33"


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["metadata"]["name"])
def test_crd_passes_official_schema_strictly(crd: dict[str, Any]) -> None:
    kubernetes_validate.validate(crd, K8S_VERSION, strict=True)


@pytest.mark.parametrize("directory", [CRDS, ROOT / "charts" / "dualcap" / "crds"])
def test_committed_crds_are_not_stale(directory) -> None:
    expected = render_files()
    committed = {p.name: p.read_text() for p in directory.glob("*.yaml")}
    assert committed == expected, f"stale CRDs in {directory}: run `make crds` and commit"


def walk(schema: dict[str, Any], path: str = ""):
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from walk(schema[key], f"{path}[{key}]")


SERVER_OWNED = {".apiVersion", ".kind", ".metadata"}


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["metadata"]["name"])
def test_schema_is_structural_and_documented(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "$defs", "title", "const"):
            assert forbidden not in node, f"{path}: {forbidden} is not structural"
        assert "type" in node, f"{path}: every node needs a type"
        if "properties" in node:
            assert "additionalProperties" not in node, (
                f"{path}: properties and additionalProperties"
            )
        is_field = path and "[" not in path.rsplit(".", 1)[-1]
        if is_field and path not in SERVER_OWNED and not path.startswith(".metadata"):
            assert node.get("description"), f"{path}: no description (kubectl explain shows it)"


def test_printer_columns_and_names() -> None:
    by_kind = {c["spec"]["names"]["kind"]: c for c in all_crds()}
    site_cols = [
        c["name"] for c in by_kind["Site"]["spec"]["versions"][0]["additionalPrinterColumns"]
    ]
    assert site_cols[:7] == ["Limit", "Draw", "Headroom", "Mining", "Curtailed", "GPUs", "Ready"]
    lease_cols = [
        c["name"]
        for c in by_kind["ComputeLease"]["spec"]["versions"][0]["additionalPrinterColumns"]
    ]
    assert lease_cols[:5] == ["Site", "GPUs", "Phase", "Ready", "Age"]
    for crd in by_kind.values():
        names = crd["spec"]["names"]
        assert names["categories"] == ["dualcap"]
        assert names["shortNames"]
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
    assert by_kind["ComputeLease"]["spec"]["scope"] == "Namespaced"
    assert by_kind["Site"]["spec"]["scope"] == "Cluster"
    assert by_kind["PowerBudget"]["spec"]["scope"] == "Cluster"


def test_status_carries_observed_generation_and_conditions() -> None:
    for info in RESOURCES:
        status = load_docs(CRDS / info.filename)[0]["spec"]["versions"][0]["schema"][
            "openAPIV3Schema"
        ]["properties"]["status"]["properties"]
        assert status["observedGeneration"]["type"] == "integer"
        conditions = status["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert set(conditions["items"]["required"]) >= {
            "type",
            "status",
            "reason",
            "lastTransitionTime",
        }


def test_cli_prints_the_crds(capsys) -> None:
    from dualcap.cli import main

    assert main(["crds"]) == 0
    out = capsys.readouterr().out
    assert out.count("kind: CustomResourceDefinition") == len(RESOURCES)
