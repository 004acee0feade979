"""Label and field selectors in their string form, as list and watch take them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Requirement = tuple[str, str, frozenset[str]]  # key, operator, values


class SelectorError(ValueError):
    pass


_SET = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_label_selector(selector: str | None) -> list[Requirement]:
    if not selector:
        return []
    out: list[Requirement] = []
    for part in _split(selector):
        eq = _EQ.match(part)
        if eq:
            key, op, value = eq.groups()
            out.append((key, "!=" if op == "!=" else "=", frozenset([value])))
            continue
        match = _SET.match(part)
        if not match:
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
        neg, key, op, values = match.groups()
        if op:
            if neg:
                raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
            vals = frozenset(v.strip() for v in values.split(",") if v.strip())
            out.append((key, op, vals))
        else:
            out.append((key, "!exists" if neg else "exists", frozenset()))
    return out


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    for key, op, values in requirements:
        present = key in labels
        if op == "=":
            if not present or labels[key] not in values:
                return False
        elif op == "!=":
            if present and labels[key] in values:
                return False
        elif op == "in":
            if not present or labels[key] not in values:
                return False
        elif op == "notin":
            if present and labels[key] in values:
                return False
        elif op == "exists":
            if not present:
                return False
        elif op == "!exists" and present:
            return False
    return True


FIELD_GETTERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "metadata.name": lambda o: (o.get("metadata") or {}).get("name"),
    "metadata.namespace": lambda o: (o.get("metadata") or {}).get("namespace"),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
    "spec.unschedulable": lambda o: str(bool((o.get("spec") or {}).get("unschedulable"))).lower(),
    "status.phase": lambda o: (o.get("status") or {}).get("phase", ""),
    "involvedObject.name": lambda o: (o.get("involvedObject") or {}).get("name"),
    "involvedObject.kind": lambda o: (o.get("involvedObject") or {}).get("kind"),
    "involvedObject.namespace": lambda o: (o.get("involvedObject") or {}).get("namespace"),
    "involvedObject.uid": lambda o: (o.get("involvedObject") or {}).get("uid"),
    "reason": lambda o: o.get("reason"),
    "type": lambda o: o.get("type"),
}


def parse_field_selector(selector: str | None) -> list[tuple[str, bool, str]]:
    """(field, equal, value) terms; unknown fields are an error, as in Kubernetes."""
    if not selector:
        return []
    out = []
    for part in _split(selector):
        match = _EQ.match(part) or re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not match:
            raise SelectorError(f"invalid field selector: {part.strip()!r}")
        key, op, value = match.groups()
        if key not in FIELD_GETTERS:
            raise SelectorError(f"field label not supported: {key}")
        out.append((key, op != "!=", value))
    return out


def fields_match(terms: list[tuple[str, bool, str]], obj: Mapping[str, Any]) -> bool:
    for key, equal, value in terms:
        actual = FIELD_GETTERS[key](obj)
        actual = "" if actual is None else str(actual)
        if (actual == value) != equal:
            return False
    return True
