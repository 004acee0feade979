"""Discovery: the version, the API groups and their resources, and the OpenAPI documents,
as kubectl and the clients read them before anything else."""

from __future__ import annotations

from dualcap_sandbox.definitions import SCHEMA_VERSION
from dualcap_sandbox.store import ApiError, Obj, Store

NOT_FOUND = "the server could not find the requested resource"


def version() -> Obj:
    return {
        "major": "1",
        "minor": SCHEMA_VERSION.split(".")[1],
        "gitVersion": f"v{SCHEMA_VERSION}-dualcap-sandbox",
        "platform": "linux/amd64",
        "goVersion": "go1.24",
        "compiler": "gc",
    }


def core_versions(host: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }


def _versions_by_group(store: Store) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rt in store.types():
        if rt.group:
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
    return out


def group(store: Store, name: str) -> Obj:
    versions = _versions_by_group(store).get(name)
    if not versions:
        raise ApiError(404, "NotFound", NOT_FOUND)
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": gvs,
        "preferredVersion": gvs[0],
    }


def group_list(store: Store) -> Obj:
    groups = [group(store, n) for n in sorted(_versions_by_group(store))]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(store: Store, group: str, version: str) -> Obj:
    resources = [
        r
        for rt in store.types()
        if rt.group == group and rt.version == version
        for r in rt.discovery()
    ]
    if not resources:
        raise ApiError(404, "NotFound", NOT_FOUND)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
