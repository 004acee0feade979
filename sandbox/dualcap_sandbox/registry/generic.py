"""The one write path every kind goes through (kube-apiserver's generic registry store):
metadata checks, the namespace lifecycle, preconditions, generations, the status
subresource, no-op writes, and deletion (finalizers, orphaning, graceful pods), with each
kind's strategy called where the kind has a say."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from dualcap_sandbox.definitions import schema_for
from dualcap_sandbox.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from dualcap_sandbox.registry.core import NamespaceStrategy, NodeStrategy, SecretStrategy
from dualcap_sandbox.registry.crds import CrdStrategy
from dualcap_sandbox.registry.custom import CustomResourceStrategy
from dualcap_sandbox.registry.pods import PodStrategy
from dualcap_sandbox.registry.strategy import Options, Strategy, Target
from dualcap_sandbox.resources import ResourceType
from dualcap_sandbox.schema import Validator
from dualcap_sandbox.store import ApiError, Obj, Store, conflict, not_found, now_rfc3339

_DEFAULT = Strategy()
_CUSTOM = CustomResourceStrategy()
STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("", "Pod"): PodStrategy(),
    ("", "Node"): NodeStrategy(),
    ("", "Namespace"): NamespaceStrategy(),
    ("", "Secret"): SecretStrategy(),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): CrdStrategy(),
}
STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
)


def strategy_for(rt: ResourceType) -> Strategy:
    if rt.custom:
        return _CUSTOM
    return STRATEGIES.get((rt.group, rt.kind), _DEFAULT)


class Registry:
    def __init__(self, store: Store):
        self.store = store
        self.pod_grace = True  # graceful deletion of bound pods (the kubelet finishes it)
        self.validators: dict[str, Validator] = {}

    def get(self, t: Target) -> Obj:
        obj = self.store.get(t.rt, t.namespace, t.name or "")
        if obj is None:
            raise not_found(t.rt, t.name or "")
        return obj

    # --- create --------------------------------------------------------------------------

    def create(self, t: Target, obj: Obj, opts: Options) -> tuple[Obj, list[str]]:
        """The object created (or that would be, on a dry run) and the warnings."""
        strategy = strategy_for(t.rt)
        self._check_meta(t, obj, strategy)
        self._admit_namespace(t, obj)
        strategy.prepare_for_create(t.rt, obj)
        obj, warnings = strategy.validate(self, t.rt, obj, None, t, opts)
        if opts.dry_run:
            return obj, warnings
        created = self.store.create(t.rt, obj)
        return strategy.after_write(self, t.rt, created), warnings

    # --- update and patch ----------------------------------------------------------------

    def update(self, t: Target, obj: Obj, opts: Options) -> tuple[Obj, list[str]]:
        old = self.get(t)
        strategy = strategy_for(t.rt)
        self._check_meta(t, obj, strategy)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != t.name:
            raise ApiError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        meta["name"] = t.name
        rv = meta.get("resourceVersion")
        if not rv:
            if not strategy.unconditional_update:
                raise ApiError(
                    422,
                    "Invalid",
                    f'{t.rt.kind} "{t.name}" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update',
                )
        elif rv != old["metadata"]["resourceVersion"]:
            raise conflict(t.rt, t.name or "", STALE)
        if t.sub != "status":
            for key in ("ownerReferences", "finalizers", "labels", "annotations"):
                if key not in meta:
                    meta.pop(key, None)
        return self._write(t, obj, old, opts)

    def patch(
        self, t: Target, patch_type: str, body: Any, opts: Options
    ) -> tuple[Obj, list[str], bool]:
        """(object, warnings, created): an apply patch of an absent object creates it."""
        old = self.store.get(t.rt, t.namespace, t.name or "")
        if patch_type == "application/apply-patch+yaml":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "an apply patch must be an object")
            if old is None:
                if t.sub:
                    raise not_found(t.rt, t.name or "")
                body.setdefault("metadata", {})["name"] = t.name
                return (*self.create(t, body, opts), True)
            # No field manager: the applied object is merged into the live one.
            patch_type = (
                "application/merge-patch+json"
                if t.rt.custom
                else "application/strategic-merge-patch+json"
            )
        if old is None:
            raise not_found(t.rt, t.name or "")
        try:
            if patch_type == "application/json-patch+json":
                new = json_patch(old, body)
            elif patch_type == "application/merge-patch+json":
                new = merge_patch(old, body)
            elif patch_type == "application/strategic-merge-patch+json":
                if t.rt.custom:
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources",
                    )
                new = strategic_merge_patch(
                    old, body, schema_for(t.rt.group, t.rt.version, t.rt.kind)
                )
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: "
                    + ", ".join(PATCH_TYPES),
                )
        except PatchError as err:
            raise ApiError(
                err.code, "Invalid" if err.code == 422 else "BadRequest", str(err)
            ) from err
        if not isinstance(new, dict):
            raise ApiError(422, "Invalid", "the patched object is not an object")
        rv = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(t.rt, t.name or "", STALE)
        new = copy.deepcopy(new)
        new.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new["metadata"].get("name") != t.name:
            raise ApiError(422, "Invalid", "metadata.name cannot be changed")
        return (*self._write(t, new, old, opts), False)

    def _write(self, t: Target, new: Obj, old: Obj, opts: Options) -> tuple[Obj, list[str]]:
        """Store ``new`` in place of ``old``: status-subresource and generation rules, the
        kind's own changes and validation, no-op writes kept out of the history, and the
        deletion finished when nothing holds a deleted object any more."""
        rt, strategy = t.rt, strategy_for(t.rt)
        new.setdefault("metadata", {})
        if t.sub == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status")
            if merged["status"] is None:
                merged.pop("status")
            new = merged
        else:
            if rt.has_status:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            strategy.prepare_for_update(rt, new, old)
        meta = new["metadata"]
        if rt.has_generation:
            meta["generation"] = old["metadata"].get("generation", 1)
            if strategy.spec_changed(rt, old, new):
                meta["generation"] += 1
        else:
            meta.pop("generation", None)
        new, warnings = strategy.validate(self, rt, new, old, t, opts)
        if opts.dry_run:
            return new, warnings
        if _same(old, new):
            return old, warnings  # a no-op write does not bump the resourceVersion
        deleting = old["metadata"].get("deletionTimestamp")
        if deleting:
            new["metadata"]["deletionTimestamp"] = deleting
            if "deletionGracePeriodSeconds" in old["metadata"]:
                grace = old["metadata"]["deletionGracePeriodSeconds"]
                new["metadata"]["deletionGracePeriodSeconds"] = grace
            if not strategy.held(new):
                return self.store.remove(rt, old, last=new), warnings
        stored = self.store.replace(rt, new, old)
        if t.sub != "status" and not deleting:
            stored = strategy.after_write(self, rt, stored)
        return stored, warnings

    # --- delete --------------------------------------------------------------------------

    def delete(self, t: Target, options: Obj, opts: Options) -> tuple[Obj, bool]:
        """(object, still there): still there while finalizers or a grace period hold it."""
        old = self.get(t)
        pre = options.get("preconditions") or {}
        if (
            pre.get("resourceVersion")
            and pre["resourceVersion"] != old["metadata"]["resourceVersion"]
        ):
            raise conflict(
                t.rt,
                t.name or "",
                f"the ResourceVersion in the precondition ({pre['resourceVersion']}) does not match the ResourceVersion in record ({old['metadata']['resourceVersion']}). The object might have been modified",
            )
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise conflict(
                t.rt,
                t.name or "",
                f"the UID in the precondition ({pre['uid']}) does not match the UID in record ({old['metadata']['uid']}). The object might have been deleted and then recreated",
            )
        if opts.dry_run:
            return old, True
        obj = self.delete_object(t.rt, old, opts.grace_period, opts.propagation)
        there = self.store.get(t.rt, t.namespace, t.name or "") is not None
        return obj, bool(obj["metadata"].get("deletionTimestamp")) and there

    def delete_object(
        self, rt: ResourceType, old: Obj, grace: Any = None, policy: str | None = None
    ) -> Obj:
        """Delete as the API does: dependents orphaned if asked, then the kind's rule."""
        if policy == "Orphan":
            uid = old["metadata"]["uid"]
            for dep_rt, dep in self.store.dependents(uid):
                new = copy.deepcopy(dep)
                refs = [
                    r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid
                ]
                new["metadata"]["ownerReferences"] = refs
                if not refs:
                    del new["metadata"]["ownerReferences"]
                self.store.replace(dep_rt, new, dep)
        opts = Options(grace_period=grace, propagation=policy)
        return strategy_for(rt).delete(self, rt, old, opts)

    def delete_collection(self, t: Target, selected: Callable[[Obj], bool]) -> list[Obj]:
        items = [o for o in list(self.store.list_objects(t.rt, t.namespace)) if selected(o)]
        for o in items:
            self.delete_object(t.rt, o)
        return items

    def mark_or_remove(self, rt: ResourceType, old: Obj) -> Obj:
        """Remove now, or mark for deletion (once) while finalizers hold the object."""
        if not strategy_for(rt).held(old):
            return self.store.remove(rt, old)
        if old["metadata"].get("deletionTimestamp"):
            return old
        obj = copy.deepcopy(old)
        obj["metadata"]["deletionTimestamp"] = now_rfc3339()
        return self.store.replace(rt, obj, old)

    # --- checks --------------------------------------------------------------------------

    def _check_meta(self, t: Target, obj: Obj, strategy: Strategy) -> None:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if (api_version and api_version != t.rt.api_version) or (kind and kind != t.rt.kind):
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({api_version}) does not match the expected API version ({t.rt.api_version})"
                if api_version != t.rt.api_version
                else f"the kind in the data ({kind}) does not match the expected kind ({t.rt.kind})",
            )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if t.rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and t.namespace and body_ns != t.namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = t.namespace
        else:
            meta.pop("namespace", None)
        name = meta.get("name")
        if name is not None and (
            not isinstance(name, str)
            or not strategy.name_pattern.match(name)
            or len(name) > strategy.name_limit
        ):
            raise ApiError(
                422,
                "Invalid",
                f"{t.rt.kind} \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                {
                    "name": str(name),
                    "kind": t.rt.kind,
                    "causes": [{"reason": "FieldValueInvalid", "field": "metadata.name"}],
                },
            )
        for key in ("labels", "annotations"):
            values = meta.get(key)
            if values is not None and (
                not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
            ):
                raise ApiError(400, "BadRequest", f"metadata.{key} must map strings to strings")

    def _admit_namespace(self, t: Target, obj: Obj) -> None:
        """The NamespaceLifecycle admission: new content needs a live namespace."""
        if not (t.rt.namespaced and t.namespace):
            return
        ns_rt = self.store.rt("", "namespaces")
        ns = self.store.get(ns_rt, None, t.namespace) if ns_rt is not None else None
        if ns is None:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{t.namespace}" not found',
                {"name": t.namespace, "kind": "namespaces"},
            )
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{t.rt.plural} "{obj["metadata"].get("name")}" is forbidden: unable to create new content in namespace {t.namespace} because it is being terminated',
            )


def _same(old: Obj, new: Obj) -> bool:
    a = dict(old, metadata={k: v for k, v in old["metadata"].items() if k != "resourceVersion"})
    b = dict(new, metadata={k: v for k, v in new["metadata"].items() if k != "resourceVersion"})
    return a == b
