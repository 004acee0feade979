"""CustomResourceDefinitions: names and CEL rules checked on every write; a CRD written is
established at once (its kinds served, its status set); deleting it deletes its custom
resources and stops serving them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dualcap_sandbox.registry.strategy import Options, Strategy, Target
from dualcap_sandbox.resources import ResourceType, from_crd
from dualcap_sandbox.schema import CelCompileError, compile_rule, iter_rules
from dualcap_sandbox.store import ApiError, Obj, now_rfc3339

if TYPE_CHECKING:
    from dualcap_sandbox.registry.generic import Registry


class CrdStrategy(Strategy):
    def validate(
        self,
        registry: Registry,
        rt: ResourceType,
        obj: Obj,
        old: Obj | None,
        t: Target,
        opts: Options,
    ) -> tuple[Obj, list[str]]:
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        name = obj.get("metadata", {}).get("name")
        expected = f"{names.get('plural')}.{spec.get('group')}"
        if name != expected:
            raise ApiError(
                422,
                "Invalid",
                f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        for version in spec.get("versions") or []:
            schema = (version.get("schema") or {}).get("openAPIV3Schema") or {}
            try:
                for rule in iter_rules(schema):
                    compile_rule(rule)
            except CelCompileError as err:
                raise ApiError(
                    422,
                    "Invalid",
                    f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: {err}',
                ) from err
        return obj, []

    def after_write(self, registry: Registry, rt: ResourceType, stored: Obj) -> Obj:
        """Established: the kinds served and the conditions that say so."""
        for served in from_crd(stored):
            registry.store.register(served)
        status = {
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now_rfc3339(),
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now_rfc3339(),
                },
            ],
            "acceptedNames": stored["spec"]["names"],
            "storedVersions": [
                v["name"] for v in stored["spec"].get("versions", []) if v.get("storage")
            ],
        }
        updated = dict(stored, status=status)
        updated["metadata"] = dict(stored["metadata"])
        return registry.store.replace(rt, updated, stored)

    def delete(self, registry: Registry, rt: ResourceType, old: Obj, opts: Options) -> Obj:
        spec = old["spec"]
        served = registry.store.rt(spec["group"], spec["names"]["plural"])
        if served is not None:
            for item in list(registry.store.list_objects(served)):
                registry.store.remove(served, item)
            registry.store.unregister(spec["group"], spec["names"]["plural"])
        return registry.mark_or_remove(rt, old)
