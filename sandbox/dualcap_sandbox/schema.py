"""Validation of custom resources against a CRD's structural schema, as the API server does it.

In the order the API server applies them: unknown fields pruned (unless
``x-kubernetes-preserve-unknown-fields``), defaults filled into objects that are present,
then the OpenAPI constraints and the CEL rules (``x-kubernetes-validations``, core CEL via
cel-python). Errors read like the API server's ``field.Error`` strings, e.g.
``spec.gpus: Invalid value: 0: spec.gpus in body should be greater than or equal to 1``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import celpy
import celpy.celtypes as ct
from celpy.adapter import json_to_cel


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str
    cel: bool = False  # from a CEL rule (does not stop the rules above it)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class CelCompileError(ValueError):
    """A CEL rule of a CRD does not compile."""


_ENV = celpy.Environment()


@lru_cache(maxsize=4096)
def compile_rule(rule: str) -> Any:
    try:
        return _ENV.program(_ENV.compile(rule))
    except Exception as err:  # cel-python raises its own parse errors
        raise CelCompileError(f"compilation failed: {rule!r}: {err}") from err


_INLINE_FLAGS = re.compile(r"\(\?([imsU]+)\)")


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    """A CRD's pattern (RE2, as the apiserver reads it) in Python's re. RE2 takes inline
    flags anywhere (``^(?i)[a-z]...``, as Kueue's CRDs write); Python only at the start, so
    flags that open the pattern after its anchor are moved before it."""
    try:
        return re.compile(pattern)
    except re.error:
        flags = "".join(_INLINE_FLAGS.findall(pattern))
        stripped = _INLINE_FLAGS.sub("", pattern)
        return re.compile(f"(?{flags}){stripped}" if flags else stripped)


def iter_rules(schema: dict[str, Any]) -> Iterator[str]:
    """Every CEL rule in a schema (to compile a CRD's rules when it is created)."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield rule["rule"]
    for sub in (schema.get("properties") or {}).values():
        yield from iter_rules(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from iter_rules(schema[key])


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _type_ok(value: Any, expected: str) -> bool:
    actual = _json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer" and actual == "number":
        return float(value).is_integer()
    return actual == expected


def prune_and_default(value: Any, schema: dict[str, Any]) -> Any:
    """Drop fields the schema does not know; fill defaults into present objects."""
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        out: dict[str, Any] = {}
        for key, sub in value.items():
            if props and key in props:
                out[key] = prune_and_default(sub, props[key])
            elif isinstance(extra, dict):
                out[key] = prune_and_default(sub, extra)
            elif preserve or extra is True:
                out[key] = sub
        for key, sub_schema in (props or {}).items():
            if key not in out and "default" in sub_schema:
                out[key] = prune_and_default(copy.deepcopy(sub_schema["default"]), sub_schema)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune_and_default(item, schema["items"]) for item in value]
    if schema.get("type") == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def to_cel(value: Any, schema: dict[str, Any] | None) -> Any:
    """A CEL value typed by the schema, as Kubernetes types it (number -> double, ...)."""
    if schema is None or schema.get("x-kubernetes-int-or-string"):
        return json_to_cel(value)
    kind = schema.get("type")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        return ct.MapType(
            {
                ct.StringType(k): to_cel(
                    v, props.get(k) if k in props else extra if isinstance(extra, dict) else None
                )
                for k, v in value.items()
            }
        )
    if isinstance(value, list):
        items = schema.get("items")
        return ct.ListType([to_cel(v, items if isinstance(items, dict) else None) for v in value])
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return ct.DoubleType(float(value))
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return ct.IntType(int(value))
    return json_to_cel(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Validator:
    """Validates one object against one openAPIV3Schema; collects every error."""

    def __init__(self, schema: dict[str, Any]):
        self.schema = schema
        for rule in iter_rules(schema):
            compile_rule(rule)

    def validate(self, obj: Any, old: Any = None) -> list[FieldError]:
        errors: list[FieldError] = []
        self._check(obj, old, self.schema, "", errors)
        return errors

    def _check(
        self, value: Any, old: Any, schema: dict[str, Any], path: str, errors: list[FieldError]
    ) -> None:
        expected = schema.get("type")
        if value is None:
            if not schema.get("nullable"):
                errors.append(
                    FieldError(
                        path,
                        f'Invalid value: "null": {path} in body must be of type {expected}: "null"',
                    )
                )
            return
        if expected and not _type_ok(value, expected):
            errors.append(
                FieldError(
                    path,
                    f'Invalid value: "{_json_type(value)}": {path or "body"} in body must be of type'
                    f' {expected}: "{_json_type(value)}"',
                )
            )
            return
        before = sum(1 for e in errors if not e.cel)
        self._scalar_constraints(value, schema, path, errors)
        if isinstance(value, dict):
            self._object(value, old if isinstance(old, dict) else None, schema, path, errors)
        elif isinstance(value, list):
            self._array(value, schema, path, errors)
        # CEL rules run only where the value is well-formed for the OpenAPI schema, as in
        # the API server; another rule failing below does not stop them.
        if sum(1 for e in errors if not e.cel) == before:
            self._rules(value, old, schema, path, errors)

    def _scalar_constraints(
        self, value: Any, schema: dict[str, Any], path: str, errors: list[FieldError]
    ) -> None:
        where = path or "body"
        if "enum" in schema and value not in schema["enum"]:
            supported = ", ".join(_fmt(v) for v in schema["enum"])
            errors.append(
                FieldError(path, f"Unsupported value: {_fmt(value)}: supported values: {supported}")
            )
        if isinstance(value, int | float) and not isinstance(value, bool):
            low, high = schema.get("minimum"), schema.get("maximum")
            if low is not None:
                if schema.get("exclusiveMinimum") and value <= low:
                    errors.append(
                        FieldError(
                            path,
                            f"Invalid value: {_fmt(value)}: {where} in body should be greater than {_fmt(low)}",
                        )
                    )
                elif value < low:
                    errors.append(
                        FieldError(
                            path,
                            f"Invalid value: {_fmt(value)}: {where} in body should be greater than or equal to {_fmt(low)}",
                        )
                    )
            if high is not None:
                if schema.get("exclusiveMaximum") and value >= high:
                    errors.append(
                        FieldError(
                            path,
                            f"Invalid value: {_fmt(value)}: {where} in body should be less than {_fmt(high)}",
                        )
                    )
                elif value > high:
                    errors.append(
                        FieldError(
                            path,
                            f"Invalid value: {_fmt(value)}: {where} in body should be less than or equal to {_fmt(high)}",
                        )
                    )
        if isinstance(value, str):
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                errors.append(
                    FieldError(path, f"Too long: may not be more than {schema['maxLength']} bytes")
                )
            if "minLength" in schema and len(value) < schema["minLength"]:
                errors.append(
                    FieldError(
                        path,
                        f"Invalid value: {_fmt(value)}: {where} in body should be at least {schema['minLength']} chars long",
                    )
                )
            if "pattern" in schema and not _regex(schema["pattern"]).search(value):
                errors.append(
                    FieldError(
                        path,
                        f"Invalid value: {_fmt(value)}: {where} in body should match '{schema['pattern']}'",
                    )
                )

    def _object(
        self,
        value: dict[str, Any],
        old: dict[str, Any] | None,
        schema: dict[str, Any],
        path: str,
        errors: list[FieldError],
    ) -> None:
        for key in schema.get("required", []):
            if key not in value:
                errors.append(FieldError(_join(path, key), "Required value"))
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            sub_schema = (
                props.get(key) if key in props else extra if isinstance(extra, dict) else None
            )
            if sub_schema is not None:
                self._check(sub, (old or {}).get(key), sub_schema, _join(path, key), errors)

    def _array(
        self, value: list[Any], schema: dict[str, Any], path: str, errors: list[FieldError]
    ) -> None:
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(
                FieldError(
                    path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items"
                )
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(
                FieldError(
                    path,
                    f"Invalid value: {len(value)}: {path} in body should have at least {schema['minItems']} items",
                )
            )
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            seen: list[Any] = []
            for i, item in enumerate(value):
                if item in seen:
                    errors.append(FieldError(f"{path}[{i}]", f"Duplicate value: {_fmt(item)}"))
                seen.append(item)
        elif list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen_keys: set[str] = set()
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                key = json.dumps({k: item.get(k) for k in keys}, sort_keys=True)
                if key in seen_keys:
                    shown = ", ".join(f'"{k}":{_fmt(item.get(k))}' for k in keys)
                    errors.append(
                        FieldError(
                            f"{path}[{i}]", f"Duplicate value: map[string]interface {{}}{{{shown}}}"
                        )
                    )
                seen_keys.add(key)
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                self._check(item, None, items, f"{path}[{i}]", errors)

    def _rules(
        self, value: Any, old: Any, schema: dict[str, Any], path: str, errors: list[FieldError]
    ) -> None:
        rules = schema.get("x-kubernetes-validations")
        if not rules:
            return
        self_value = to_cel(value, schema)
        for rule in rules:
            text = rule["rule"]
            activation = {"self": self_value}
            if "oldSelf" in text:
                if old is None:
                    continue  # transition rules apply to updates only
                activation["oldSelf"] = to_cel(old, schema)
            try:
                result = compile_rule(text).evaluate(activation)
                passed = isinstance(result, ct.BoolType) and bool(result)
                failure = rule.get("message") or f"failed rule: {text}"
            except Exception as err:  # an evaluation error fails the rule, as in Kubernetes
                passed = False
                failure = f"{rule.get('message') or 'failed rule: ' + text} (evaluation error: {err.args[0] if err.args else err})"
            if not passed:
                field_path = path + rule.get("fieldPath", "") if rule.get("fieldPath") else path
                shown = _fmt(value) if not isinstance(value, dict | list) else '"object"'
                errors.append(
                    FieldError(
                        field_path.lstrip("."), f"Invalid value: {shown}: {failure}", cel=True
                    )
                )


def validate_custom_resource(
    obj: dict[str, Any], schema: dict[str, Any], old: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[FieldError]]:
    """Prune, default and validate a custom resource: (the object as stored, errors)."""
    # metadata is the API server's: it is never pruned by the CRD schema.
    metadata = copy.deepcopy(obj.get("metadata"))
    stored = prune_and_default(copy.deepcopy(obj), schema)
    if metadata is not None:
        stored["metadata"] = metadata
    return stored, Validator(schema).validate(stored, old)
