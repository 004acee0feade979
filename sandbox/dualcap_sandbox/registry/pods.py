"""Pods: defaults on create, graceful deletion of a bound pod (the kubelet finishes it),
and the ``binding`` and ``eviction`` subresources."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from dualcap_sandbox.registry.strategy import Options, Strategy, Target, stamped
from dualcap_sandbox.resources import ResourceType
from dualcap_sandbox.store import ApiError, Obj, conflict, now_rfc3339

if TYPE_CHECKING:
    from dualcap_sandbox.registry.generic import Registry

DEFAULT_TOLERATIONS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


class PodStrategy(Strategy):
    unconditional_update = False

    def prepare_for_create(self, rt: ResourceType, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec.get("containers"), list) or not spec["containers"]:
            raise ApiError(
                422,
                "Invalid",
                f'Pod "{obj["metadata"].get("name", "")}" is invalid: spec.containers: Required value',
            )
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        tolerations = spec.setdefault("tolerations", [])
        for key in DEFAULT_TOLERATIONS:  # the DefaultTolerationSeconds admission plugin
            if not any(t.get("key") == key for t in tolerations):
                tolerations.append(
                    {
                        "key": key,
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 300,
                    }
                )
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}

    def held(self, obj: Obj) -> bool:
        # A pod in graceful termination stays until its kubelet has stopped it.
        return super().held(obj) or "deletionGracePeriodSeconds" in obj["metadata"]

    def delete(self, registry: Registry, rt: ResourceType, old: Obj, opts: Options) -> Obj:
        bound = bool((old.get("spec") or {}).get("nodeName"))
        if not (registry.pod_grace and bound and str(opts.grace_period) != "0"):
            # Unbound, or forced (grace 0, even while terminating): only finalizers hold it.
            if old["metadata"].get("finalizers"):
                return registry.mark_or_remove(rt, old)
            return registry.store.remove(rt, old)
        if old["metadata"].get("deletionTimestamp"):
            return old  # already terminating
        grace = opts.grace_period
        seconds = (
            int(grace)
            if grace is not None and str(grace).isdigit()
            else int((old.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        )
        obj = stamped(old, deletionTimestamp=now_rfc3339(), deletionGracePeriodSeconds=seconds)
        return registry.store.replace(rt, obj, old)


def bind(registry: Registry, t: Target, body: Obj) -> None:
    """``pods/binding``: the scheduler's write of ``spec.nodeName``, once."""
    old = registry.get(t)
    node = (body.get("target") or {}).get("name")
    if not node:
        raise ApiError(400, "BadRequest", "a binding needs target.name")
    if (old.get("spec") or {}).get("nodeName"):
        raise conflict(
            t.rt,
            t.name or "",
            f"pod {t.name} is already assigned to node {old['spec']['nodeName']}",
        )
    new = copy.deepcopy(old)
    new["spec"]["nodeName"] = node
    registry.store.replace(t.rt, new, old)


def evict(registry: Registry, t: Target) -> None:
    """``pods/eviction``: a delete (no disruption budgets here)."""
    registry.delete_object(t.rt, registry.get(t))
