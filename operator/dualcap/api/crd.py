"""CustomResourceDefinitions generated from the models (`dualcap crds`).

The pydantic JSON schema is turned into a *structural* OpenAPI v3 schema as apiextensions v1
requires it: every ``$ref`` inlined, ``Optional`` (``anyOf`` with null) collapsed into a
field that may be absent, titles and ``additionalProperties: false`` dropped (the API server
prunes unknown fields instead), CEL rules carried over from the models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel

from dualcap.api.budget import PowerBudget
from dualcap.api.common import GROUP, VERSION
from dualcap.api.lease import ComputeLease
from dualcap.api.minerblock import MinerBlock
from dualcap.api.site import Site

_DROP = {"title", "additionalProperties"}
READY = '.status.conditions[?(@.type=="Ready")].status'


@dataclass(frozen=True)
class CrdInfo:
    model: type[BaseModel]
    kind: str
    plural: str
    singular: str
    scope: str
    short_names: list[str]
    columns: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def filename(self) -> str:
        return f"{GROUP}_{self.plural}.yaml"


def _column(name: str, type_: str, path: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "jsonPath": path, "description": description, **extra}


AGE = _column("Age", "date", ".metadata.creationTimestamp", "Time since creation.")

RESOURCES: list[CrdInfo] = [
    CrdInfo(
        model=Site,
        kind="Site",
        plural="sites",
        singular="site",
        scope="Cluster",
        short_names=["dcsite"],
        columns=[
            _column("Limit", "number", ".status.limitKW", "Effective envelope now, kW."),
            _column("Draw", "number", ".status.committedKW", "Committed draw, kW."),
            _column("Headroom", "number", ".status.headroomKW", "Limit minus draw, kW."),
            _column("Mining", "integer", ".status.controllers.mining", "Controllers mining."),
            _column(
                "Curtailed", "integer", ".status.controllers.curtailed", "Controllers curtailed."
            ),
            _column("GPUs", "integer", ".status.gpus.leased", "GPUs leased."),
            _column("Ready", "string", READY, "Ready condition."),
            AGE,
            _column("Planned", "number", ".status.plannedKW", "Planned draw, kW.", priority=1),
            _column("Held", "integer", ".status.controllers.held", "Held by a person.", priority=1),
            _column("Free GPUs", "integer", ".status.gpus.free", "GPUs free.", priority=1),
            _column(
                "Measured",
                "number",
                ".status.miners.measuredKW",
                "Mining kW as the MinerBlocks measure it (MinerAgent).",
                priority=1,
            ),
            _column(
                "Modelled",
                "number",
                ".status.miners.modelledKW",
                "The same blocks' mining kW by nameplate.",
                priority=1,
            ),
        ],
    ),
    CrdInfo(
        model=PowerBudget,
        kind="PowerBudget",
        plural="powerbudgets",
        singular="powerbudget",
        scope="Cluster",
        short_names=["pb", "pbudget"],
        columns=[
            _column("Site", "string", ".spec.siteRef", "The site."),
            _column("Interconnect", "number", ".spec.limitKW", "Interconnect limit, kW."),
            _column("Effective", "number", ".status.effectiveLimitKW", "Limit now, kW."),
            _column("Next", "string", ".status.nextChange.at", "Next limit change."),
            _column("Ready", "string", READY, "Ready condition."),
            AGE,
            _column(
                "Next Limit", "number", ".status.nextChange.limitKW", "Next limit, kW.", priority=1
            ),
        ],
    ),
    CrdInfo(
        model=ComputeLease,
        kind="ComputeLease",
        plural="computeleases",
        singular="computelease",
        scope="Namespaced",
        short_names=["cl", "clease"],
        columns=[
            _column("Site", "string", ".spec.siteRef", "The site."),
            _column("GPUs", "integer", ".spec.gpus", "GPUs leased."),
            _column("Phase", "string", ".status.phase", "Lease phase."),
            _column("Ready", "string", READY, "Ready condition."),
            AGE,
            _column("Priority", "integer", ".spec.priority", "Priority.", priority=1),
            _column("Preemptible", "boolean", ".spec.preemptible", "Preemptible.", priority=1),
            _column("Start", "string", ".spec.start", "Start.", priority=1),
            _column("End", "string", ".spec.end", "End.", priority=1),
        ],
    ),
    CrdInfo(
        model=MinerBlock,
        kind="MinerBlock",
        plural="minerblocks",
        singular="minerblock",
        scope="Cluster",
        short_names=["mb", "mblock"],
        columns=[
            _column("Node", "string", ".spec.nodeName", "The ASIC controller node."),
            _column("Miners", "integer", ".status.miners", "Miners in the block."),
            _column("Mining", "integer", ".status.mining", "Miners measured mining."),
            _column("Sleeping", "integer", ".status.sleeping", "Miners measured asleep."),
            _column("Unreachable", "integer", ".status.unreachable", "Miners not answering."),
            _column("Power", "number", ".status.powerKW", "Measured draw, kW."),
            _column("Hashrate", "number", ".status.hashrateTHs", "Measured hashrate, TH/s."),
            AGE,
            _column("Observed", "date", ".status.observedAt", "Time of the report.", priority=1),
            _column("Ready", "string", READY, "Ready condition.", priority=1),
        ],
    ),
]


class SchemaError(ValueError):
    """The model cannot be expressed as a structural schema."""


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline ``$ref`` / single ``allOf`` / nullable ``anyOf`` into one plain node."""
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**_resolve(target, defs), **node}
    if "allOf" in node:
        (only,) = node.pop("allOf")
        node = {**_resolve(only, defs), **node}
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise SchemaError(f"a union is not structural: {options}")
        node = {**_resolve(options[0], defs), **node}
        if node.get("default", 0) is None:
            del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
        node.setdefault("type", "string")
    # JSON Schema 2020 bounds -> OpenAPI 3.0 (a boolean beside minimum / maximum).
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(exclusive), int | float) and not isinstance(node[exclusive], bool):
            node[bound] = node.pop(exclusive)
            node[exclusive] = True
    return node


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A structural OpenAPI v3 schema for one node of the pydantic JSON schema."""
    node = _resolve(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        else:
            out[key] = value
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "properties" not in node:
        out["additionalProperties"] = structural(extra, defs)
    if "default" in out and out["default"] is None:
        del out["default"]
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out.setdefault("x-kubernetes-preserve-unknown-fields", True)
    return _ordered(out)


_FIRST = ("description", "type", "required", "properties", "items", "additionalProperties")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Stable, readable key order: the essentials first, then the rest by name."""
    keys = [k for k in _FIRST if k in node] + sorted(k for k in node if k not in _FIRST)
    return {k: node[k] for k in keys}


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The openAPIV3Schema of a resource model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    root = structural(raw, defs)
    props = root["properties"]
    # The API server owns these three: keep them plain, as every CRD does.
    props["apiVersion"] = {
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation.",
    }
    props["kind"] = {
        "type": "string",
        "description": "Kind is a string value representing the REST resource.",
    }
    props["metadata"] = {"type": "object"}
    root["required"] = [r for r in root.get("required", []) if r in ("spec",)]
    return _ordered(root)


def crd(info: CrdInfo) -> dict[str, Any]:
    """The CustomResourceDefinition of one resource."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": info.name,
            "labels": {"app.kubernetes.io/name": "dualcap", "app.kubernetes.io/part-of": "dualcap"},
        },
        "spec": {
            "group": GROUP,
            "scope": info.scope,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": info.short_names,
                "categories": ["dualcap"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": info.columns,
                    "schema": {"openAPIV3Schema": openapi_schema(info.model)},
                }
            ],
        },
    }


def all_crds() -> list[dict[str, Any]]:
    return [crd(info) for info in RESOURCES]


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings kept readable, no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(obj: dict[str, Any]) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def render_files() -> dict[str, str]:
    """File name -> YAML text of every CRD, as committed in crds/."""
    header = "# Generated by `dualcap crds` from operator/dualcap/api. Do not edit.\n"
    return {info.filename: header + to_yaml(crd(info)) for info in RESOURCES}
