"""The examples are valid: for the CRD schemas (with CEL), for the models, and for Kubernetes."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from dualcap.api import ComputeLease, PowerBudget, Site
from dualcap_sandbox.schema import validate_custom_resource
from tests.conftest import example_objects

MODELS = {"Site": Site, "PowerBudget": PowerBudget, "ComputeLease": ComputeLease}
OBJECTS = example_objects()
CUSTOM = [o for o in OBJECTS if o["apiVersion"].startswith("dualcap.io/")]
BUILTIN = [o for o in OBJECTS if not o["apiVersion"].startswith("dualcap.io/")]


def _id(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def test_examples_are_a_whole_site() -> None:
    kinds = [o["kind"] for o in OBJECTS]
    assert kinds.count("Site") == 1
    assert kinds.count("PowerBudget") == 1
    assert kinds.count("ComputeLease") == 3
    nodes = [o for o in OBJECTS if o["kind"] == "Node"]
    roles = [n["metadata"]["labels"]["dualcap.io/role"] for n in nodes]
    assert roles.count("asic") == 25
    assert roles.count("gpu") == 8


@pytest.mark.parametrize("obj", CUSTOM, ids=_id)
def test_custom_resource_passes_its_crd(obj: dict[str, Any], schemas) -> None:
    stored, errors = validate_custom_resource(obj, schemas[obj["kind"]])
    assert errors == []

    # Nothing the user wrote is pruned: every field is known to the CRD.
    def contains(big: Any, small: Any) -> bool:
        if isinstance(small, dict):
            return isinstance(big, dict) and all(
                k in big and contains(big[k], v) for k, v in small.items()
            )
        if isinstance(small, list):
            return (
                isinstance(big, list) and len(big) == len(small) and all(map(contains, big, small))
            )
        return big == small

    assert contains(stored, obj)


@pytest.mark.parametrize("obj", CUSTOM, ids=_id)
def test_custom_resource_round_trips_through_its_model(obj: dict[str, Any]) -> None:
    model = MODELS[obj["kind"]]
    parsed = model.model_validate(obj)
    dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert dumped == obj
    # ... and a full dump (defaults filled in) parses back to the same model.
    assert model.model_validate(parsed.to_dict()) == parsed


@pytest.mark.parametrize("obj", CUSTOM, ids=_id)
def test_defaults_of_crd_and_model_agree(obj: dict[str, Any], schemas) -> None:
    """What the API server stores (CRD defaults) means the same to the model as the input."""
    stored, _ = validate_custom_resource(obj, schemas[obj["kind"]])
    model = MODELS[obj["kind"]]
    assert model.model_validate(stored) == model.model_validate(copy.deepcopy(obj))


@pytest.mark.parametrize("obj", BUILTIN, ids=_id)
def test_builtin_objects_pass_official_schemas(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, "1.33", strict=True)


@pytest.mark.parametrize("without", ["asic", "gpu"])
def test_a_site_with_one_kind_of_node_passes_its_crd_and_model(without: str, schemas) -> None:
    # Every site starts mining-only (no spec.gpu); some are GPU-only (no spec.asic).
    site = copy.deepcopy(next(o for o in CUSTOM if o["kind"] == "Site"))
    del site["spec"][without]
    _, errors = validate_custom_resource(site, schemas["Site"])
    assert errors == []
    assert getattr(Site.model_validate(site).spec, without) is None
