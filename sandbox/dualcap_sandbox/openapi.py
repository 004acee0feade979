"""OpenAPI documents (v2 and v3) as kubectl reads them: the official definitions of the
built-in kinds, the CRDs' schemas, and paths whose operations declare ``fieldValidation``
so kubectl validates on the server (`kubectl apply` needs no ``--validate=false``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dualcap_sandbox.definitions import SCHEMA_VERSION, definitions
from dualcap_sandbox.resources import ResourceType

_QUERY = [
    ("dryRun", "When present, modifications are not persisted."),
    ("fieldManager", "The name of the actor or entity making the change."),
    ("fieldValidation", "Ignore, Warn or Strict: how unknown or duplicate fields are handled."),
]


def _convert(node: Any, ref_prefix: str) -> Any:
    """JSON-Schema flavoured definitions -> OpenAPI: refs re-pointed, nullable types."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = ref_prefix + value.rsplit("/", 1)[-1]
            elif key == "type" and isinstance(value, list):
                kinds = [v for v in value if v != "null"]
                out[key] = kinds[0] if kinds else "object"
            else:
                out[key] = _convert(value, ref_prefix)
        return out
    if isinstance(node, list):
        return [_convert(v, ref_prefix) for v in node]
    return node


def _crd_definition(rt: ResourceType) -> dict[str, Any]:
    schema = dict(rt.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    schema["x-kubernetes-group-version-kind"] = [
        {"group": rt.group, "version": rt.version, "kind": rt.kind}
    ]
    return schema


def definition_name(rt: ResourceType) -> str:
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "core"
    return f"{group}.{rt.version}.{rt.kind}"


def _operations(rt: ResourceType) -> dict[str, Any]:
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    params = [
        {
            "name": n,
            "in": "query",
            "description": d,
            "schema": {"type": "string"},
            "uniqueItems": True,
        }
        for n, d in _QUERY
    ]
    ok = {"200": {"description": "OK"}}

    def op(action: str, with_params: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "responses": ok,
        }
        if with_params:
            out["parameters"] = params
        return out

    base = rt.prefix + ("/namespaces/{namespace}" if rt.namespaced else "") + f"/{rt.plural}"
    paths = {
        base: {
            "get": op("list", False),
            "post": op("post", True),
            "delete": op("deletecollection", False),
            "parameters": params,
        },
        base + "/{name}": {
            "get": op("get", False),
            "put": op("put", True),
            "patch": op("patch", True),
            "delete": op("delete", False),
            "parameters": params,
        },
    }
    if rt.has_status:
        paths[base + "/{name}/status"] = {
            "get": op("get", False),
            "put": op("put", True),
            "patch": op("patch", True),
            "parameters": params,
        }
    return paths


class OpenApi:
    """Documents built once per set of resource types, served as bytes."""

    def __init__(self) -> None:
        self._key: tuple[str, ...] | None = None
        self._v2: bytes = b""
        self._v3: dict[str, bytes] = {}
        self._v3_root: bytes = b""

    def _refresh(self, types: list[ResourceType]) -> None:
        key = tuple(
            sorted(
                f"{t.key}/{t.version}/{len(json.dumps(t.schema, sort_keys=True)) if t.schema else 0}"
                for t in types
            )
        )
        if key == self._key:
            return
        self._key = key
        builtin = definitions()
        custom = {definition_name(t): _crd_definition(t) for t in types if t.custom}
        v2_defs = {name: _convert(s, "#/definitions/") for name, s in builtin.items()}
        v2_defs.update(custom)
        v2_paths: dict[str, Any] = {}
        for t in types:
            for path, item in _operations(t).items():
                v2_paths[path] = {k: v for k, v in item.items() if k != "parameters"}
        self._v2 = json.dumps(
            {
                "swagger": "2.0",
                "info": {"title": "Kubernetes (dualcap sandbox)", "version": f"v{SCHEMA_VERSION}"},
                "paths": v2_paths,
                "definitions": v2_defs,
            }
        ).encode()
        v3_schemas = {name: _convert(s, "#/components/schemas/") for name, s in builtin.items()}
        v3_schemas.update(custom)
        self._v3 = {}
        groups: dict[str, list[ResourceType]] = {}
        for t in types:
            groups.setdefault(t.prefix.lstrip("/"), []).append(t)
        root_paths = {}
        for gv, members in sorted(groups.items()):
            paths: dict[str, Any] = {}
            for t in members:
                paths.update(_operations(t))
            doc = json.dumps(
                {
                    "openapi": "3.0.0",
                    "info": {
                        "title": "Kubernetes (dualcap sandbox)",
                        "version": f"v{SCHEMA_VERSION}",
                    },
                    "paths": paths,
                    "components": {"schemas": v3_schemas},
                }
            ).encode()
            self._v3[gv] = doc
            digest = hashlib.sha256(doc).hexdigest()[:32].upper()
            root_paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
        self._v3_root = json.dumps({"paths": root_paths}).encode()

    def v2(self, types: list[ResourceType]) -> bytes:
        self._refresh(types)
        return self._v2

    def v3_root(self, types: list[ResourceType]) -> bytes:
        self._refresh(types)
        return self._v3_root

    def v3(self, types: list[ResourceType], gv: str) -> bytes | None:
        self._refresh(types)
        return self._v3.get(gv)
