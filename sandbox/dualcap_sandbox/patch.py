"""Patches as the API server applies them: JSON merge patch (RFC 7386), JSON patch
(RFC 6902) and strategic merge patch with the merge keys of the official schemas."""

from __future__ import annotations

import copy
from typing import Any

from dualcap_sandbox.definitions import resolve


class PatchError(ValueError):
    """The patch cannot be applied (422 for a failed test, 400 otherwise)."""

    def __init__(self, message: str, code: int = 422):
        super().__init__(message)
        self.code = code


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}", 400)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    for part in parts:
        if isinstance(doc, dict):
            if part not in doc:
                raise PatchError(f"path {path!r} does not exist")
            doc = doc[part]
        elif isinstance(doc, list):
            try:
                doc = doc[int(part)]
            except (ValueError, IndexError) as err:
                raise PatchError(f"path {path!r} does not exist") from err
        else:
            raise PatchError(f"path {path!r} does not exist")
    return doc


def _get(doc: Any, path: str) -> Any:
    return _walk(doc, _pointer(path), path)


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {path!r} does not exist")
        return parent.pop(last)
    if isinstance(parent, list):
        try:
            return parent.pop(int(last))
        except (ValueError, IndexError) as err:
            raise PatchError(f"path {path!r} does not exist") from err
    raise PatchError(f"path {path!r} does not exist")


def _add(doc: Any, path: str, value: Any, replace: bool = False) -> Any:
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"path {path!r} does not exist")
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(copy.deepcopy(value))
        else:
            try:
                index = int(last)
            except ValueError as err:
                raise PatchError(f"invalid index in {path!r}") from err
            if replace:
                if not 0 <= index < len(parent):
                    raise PatchError(f"path {path!r} does not exist")
                parent[index] = copy.deepcopy(value)
            else:
                if not 0 <= index <= len(parent):
                    raise PatchError(f"path {path!r} does not exist")
                parent.insert(index, copy.deepcopy(value))
    else:
        raise PatchError(f"path {path!r} does not exist")
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch is a list of operations", 400)
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}", 400)
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, op.get("value"))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _add(doc, path, op.get("value"), replace=True)
        elif kind == "move":
            value = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, _get(doc, op["from"]))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"unknown operation {kind!r}", 400)
    return doc


def _props(schema: dict[str, Any]) -> dict[str, Any]:
    return resolve(schema).get("properties") or {}


def strategic_merge_patch(target: Any, patch: Any, schema: dict[str, Any] | None) -> Any:
    """Strategic merge: lists with a patch-merge-key merge by that key, ``$patch``
    directives (replace, delete, merge) honoured, ``$setElementOrder`` and ``$retainKeys``
    accepted."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    props = _props(schema or {})
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            continue
        if value is None:
            out.pop(key, None)
            continue
        sub = resolve(props.get(key) or {}) if props else {}
        if isinstance(value, dict):
            out[key] = strategic_merge_patch(out.get(key), value, sub)
        elif isinstance(value, list):
            out[key] = _merge_list(out.get(key), value, sub)
        else:
            out[key] = value
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/") and isinstance(value, list):
            field = key.split("/", 1)[1]
            if isinstance(out.get(field), list):
                out[field] = [x for x in out[field] if x not in value]
    return out


def _merge_list(current: Any, patch: list[Any], schema: dict[str, Any]) -> list[Any]:
    strategy = schema.get("x-kubernetes-patch-strategy", "")
    key = schema.get("x-kubernetes-patch-merge-key")
    if "merge" not in strategy or not isinstance(current, list):
        return [
            _clean(v) for v in patch if not (isinstance(v, dict) and v.get("$patch") == "delete")
        ]
    items_schema = resolve(schema.get("items") or {})
    if key is None:  # a merged list of primitives: union, in order
        out = list(current)
        for value in patch:
            if value not in out:
                out.append(value)
        return out
    out = [copy.deepcopy(x) for x in current]
    for value in patch:
        if not isinstance(value, dict):
            continue
        match = next(
            (i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == value.get(key)),
            None,
        )
        if value.get("$patch") == "delete":
            if match is not None:
                out.pop(match)
            continue
        if match is None:
            out.append(_clean(value))
        else:
            out[match] = strategic_merge_patch(out[match], value, items_schema)
    return out


def _clean(value: Any) -> Any:
    """Drop directives from a value that is inserted as a whole."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
