"""What a kind's writes mean, below the HTTP layer: kube-apiserver's REST strategies.

kube-apiserver keeps one generic store (``registry/generic``) and, per kind, a strategy
that says what create, update, status and delete do for it (``registry/core/pod``,
``registry/core/namespace``, ...). The sandbox has the same split: ``Registry`` in
``generic`` is the one write path, and each kind's module holds its ``Strategy``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dualcap_sandbox.resources import ResourceType
from dualcap_sandbox.store import Obj

if TYPE_CHECKING:
    from dualcap_sandbox.registry.generic import Registry

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Target:
    """What a request addresses: a kind, and a namespace, a name and a subresource."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    sub: str | None = None


@dataclass(frozen=True)
class Options:
    """The write options a client sends in the query or a DeleteOptions body."""

    field_validation: str = "Warn"  # Strict | Warn | Ignore (custom resources)
    dry_run: bool = False
    grace_period: Any = None  # gracePeriodSeconds, as sent
    propagation: str | None = None  # propagationPolicy: Orphan | Background | Foreground


class Strategy:
    """The default for a kind: what kube-apiserver does for a plain built-in resource."""

    name_pattern = DNS_SUBDOMAIN
    name_limit = 253
    # AllowUnconditionalUpdate: may a PUT leave out metadata.resourceVersion?
    unconditional_update = True

    def prepare_for_create(self, rt: ResourceType, obj: Obj) -> None:
        """Defaults and server-owned fields of a new object (status cleared or set)."""

    def prepare_for_update(self, rt: ResourceType, new: Obj, old: Obj) -> None:
        """Server-side changes to an updated object before it is validated."""

    def validate(
        self,
        registry: Registry,
        rt: ResourceType,
        obj: Obj,
        old: Obj | None,
        t: Target,
        opts: Options,
    ) -> tuple[Obj, list[str]]:
        """The object to store (pruned, defaulted) and warnings; ApiError if invalid."""
        return obj, []

    def spec_changed(self, rt: ResourceType, old: Obj, new: Obj) -> bool:
        """Whether ``metadata.generation`` moves: the spec changed."""
        return old.get("spec") != new.get("spec")

    def after_write(self, registry: Registry, rt: ResourceType, stored: Obj) -> Obj:
        """What follows a create or a (non-status) update of a live object."""
        return stored

    def held(self, obj: Obj) -> bool:
        """Whether an object marked for deletion must stay (finalizers)."""
        return bool(obj["metadata"].get("finalizers"))

    def delete(self, registry: Registry, rt: ResourceType, old: Obj, opts: Options) -> Obj:
        """Delete now, or mark for deletion while something holds the object."""
        return registry.mark_or_remove(rt, old)


def stamped(old: Obj, **meta: Any) -> Obj:
    """A copy of ``old`` with these metadata fields set."""
    obj = copy.deepcopy(old)
    obj["metadata"].update(meta)
    return obj
