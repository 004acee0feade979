"""Custom resources: pruned, defaulted and validated against their CRD's schema (OpenAPI
constraints and CEL rules, old object included for transition rules); unknown fields
rejected or warned about by ``fieldValidation``; the spec and the status written apart when
the CRD has a status subresource; every change but metadata and status is a new
generation."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from dualcap_sandbox.registry.strategy import Options, Strategy, Target
from dualcap_sandbox.resources import ResourceType
from dualcap_sandbox.schema import Validator, prune_and_default
from dualcap_sandbox.store import ApiError, Obj

if TYPE_CHECKING:
    from dualcap_sandbox.registry.generic import Registry

_NOT_SPEC = ("metadata", "status", "apiVersion", "kind")


class CustomResourceStrategy(Strategy):
    unconditional_update = False

    def prepare_for_create(self, rt: ResourceType, obj: Obj) -> None:
        if rt.has_status:
            obj.pop("status", None)  # status is written through /status only

    def spec_changed(self, rt: ResourceType, old: Obj, new: Obj) -> bool:
        return {k: v for k, v in old.items() if k not in _NOT_SPEC} != {
            k: v for k, v in new.items() if k not in _NOT_SPEC
        }

    def validate(
        self,
        registry: Registry,
        rt: ResourceType,
        obj: Obj,
        old: Obj | None,
        t: Target,
        opts: Options,
    ) -> tuple[Obj, list[str]]:
        if not rt.schema:
            return obj, []
        schema = rt.schema
        warnings: list[str] = []
        pruned = prune_and_default(copy.deepcopy(obj), schema)
        # apiVersion, kind and metadata are never pruned, declared in the schema or not
        for key in ("apiVersion", "kind", "metadata"):
            if key in obj:
                pruned[key] = obj[key]
        unknown = _unknown_fields(obj, pruned)
        if unknown and opts.field_validation == "Strict":
            raise ApiError(
                400,
                "BadRequest",
                "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown),
            )
        if unknown and opts.field_validation == "Warn":
            warnings += [f'unknown field "{u}"' for u in unknown]
        validator = registry.validators.get(rt.key)
        if validator is None or validator.schema is not schema:
            validator = registry.validators[rt.key] = Validator(schema)
        errors = [e for e in validator.validate(pruned, old) if not e.path.startswith("metadata")]
        if t.sub == "status":
            errors = [e for e in errors if e.path.startswith("status")]
        elif rt.has_status:
            errors = [e for e in errors if not e.path.startswith("status")]
        if errors:
            name = obj["metadata"].get("name", "")
            causes = [
                {"reason": "FieldValueInvalid", "message": e.message, "field": e.path}
                for e in errors
            ]
            text = str(errors[0])
            if len(errors) > 1:
                text = "[" + ", ".join(str(e) for e in errors) + "]"
            raise ApiError(
                422,
                "Invalid",
                f'{rt.kind}.{rt.group} "{name}" is invalid: {text}',
                {"name": name, "group": rt.group, "kind": rt.kind, "causes": causes},
            )
        return pruned, warnings


def _unknown_fields(original: Any, pruned: Any, path: str = "") -> list[str]:
    out = []
    if isinstance(original, dict) and isinstance(pruned, dict):
        for key, value in original.items():
            if key == "metadata" and not path:
                continue
            sub = f"{path}.{key}" if path else key
            if key not in pruned:
                out.append(sub)
            else:
                out += _unknown_fields(value, pruned[key], sub)
    elif isinstance(original, list) and isinstance(pruned, list):
        for i, (a, b) in enumerate(zip(original, pruned, strict=False)):
            out += _unknown_fields(a, b, f"{path}[{i}]")
    return out
