"""The MinerBlock model and its CRD."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dualcap.api.crd import RESOURCES, crd
from dualcap.api.minerblock import MinerBlock


def _block(name: str, node: str) -> dict:
    return {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "MinerBlock",
        "metadata": {"name": name},
        "spec": {"nodeName": node},
        "status": {
            "miners": 3,
            "mining": 1,
            "sleeping": 1,
            "unreachable": 1,
            "powerKW": 3.3,
            "hashrateTHs": 120.0,
            "observedAt": "2026-07-14T19:00:00.123456Z",
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "MinersUnreachable",
                    "message": "1 miner did not answer: 127.0.0.3",
                    "lastTransitionTime": "2026-07-14T19:00:00Z",
                }
            ],
        },
    }


def test_round_trip() -> None:
    block = MinerBlock.model_validate(_block("asic-001", "asic-001"))
    assert block.status is not None and block.status.unreachable == 1
    assert block.to_dict() == _block("asic-001", "asic-001")


def test_named_after_its_node() -> None:
    with pytest.raises(ValidationError, match="named after its node"):
        MinerBlock.model_validate(_block("asic-001", "asic-002"))


def test_status_has_exactly_the_reported_fields() -> None:
    info = next(i for i in RESOURCES if i.kind == "MinerBlock")
    schema = crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert list(schema["properties"]["status"]["properties"]) == [
        "miners",
        "mining",
        "sleeping",
        "unreachable",
        "powerKW",
        "hashrateTHs",
        "observedAt",
        "observedGeneration",
        "conditions",
    ]
    assert info.scope == "Cluster"
    columns = [c["name"] for c in info.columns if not c.get("priority")]
    assert columns == [
        "Node",
        "Miners",
        "Mining",
        "Sleeping",
        "Unreachable",
        "Power",
        "Hashrate",
        "Age",
    ]
    rules = schema["x-kubernetes-validations"]
    assert rules[0]["rule"] == "self.spec.nodeName == self.metadata.name"
