"""Strategies of the core kinds without behaviour of their own in the cluster: Nodes,
Namespaces, Secrets."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from dualcap_sandbox.registry.strategy import DNS_LABEL, Options, Strategy, stamped
from dualcap_sandbox.resources import ResourceType
from dualcap_sandbox.store import Obj, now_rfc3339

if TYPE_CHECKING:
    from dualcap_sandbox.registry.generic import Registry


class NodeStrategy(Strategy):
    unconditional_update = False

    def prepare_for_create(self, rt: ResourceType, obj: Obj) -> None:
        obj.setdefault("spec", {})


class NamespaceStrategy(Strategy):
    """A namespace's name is a DNS label; it is created Active with the ``kubernetes``
    finalizer, and deleting it only marks it Terminating: the namespace controller
    (the sandbox's cluster) deletes its content, then the namespace."""

    name_pattern = DNS_LABEL
    name_limit = 63

    def prepare_for_create(self, rt: ResourceType, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}

    def held(self, obj: Obj) -> bool:
        return super().held(obj) or bool((obj.get("spec") or {}).get("finalizers"))

    def delete(self, registry: Registry, rt: ResourceType, old: Obj, opts: Options) -> Obj:
        if old["metadata"].get("deletionTimestamp"):
            return old
        obj = stamped(old, deletionTimestamp=now_rfc3339())
        obj.setdefault("status", {})["phase"] = "Terminating"
        return registry.store.replace(rt, obj, old)


class SecretStrategy(Strategy):
    """``stringData`` is write-only: merged into ``data`` (base64) on every write; the type
    defaults to Opaque."""

    def prepare_for_create(self, rt: ResourceType, obj: Obj) -> None:
        _merge_string_data(obj)
        obj.setdefault("type", "Opaque")

    def prepare_for_update(self, rt: ResourceType, new: Obj, old: Obj) -> None:
        _merge_string_data(new)
        new.setdefault("type", old.get("type", "Opaque"))


def _merge_string_data(secret: Obj) -> None:
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = secret.get("data") or {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        secret["data"] = data
