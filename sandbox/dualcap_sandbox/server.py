"""The sandbox's HTTP API: a Kubernetes API server on aiohttp, in memory.

It answers what kubectl, kopf and the Kubernetes clients ask of a real API server:
discovery, OpenAPI, list (with selectors, paging, server-side Tables), watch (from a
resourceVersion, bookmarks, 410 Gone), get, create, update, patch (merge, JSON, strategic,
server-side apply), delete (finalizers, preconditions, grace), delete collection, the
status subresource, pod eviction and binding, and CRDs whose custom resources are pruned,
defaulted and validated (OpenAPI constraints and CEL rules) as the real server does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from dualcap_sandbox.definitions import SCHEMA_VERSION, schema_for
from dualcap_sandbox.faults import Faults
from dualcap_sandbox.openapi import OpenApi
from dualcap_sandbox.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from dualcap_sandbox.resources import ResourceType, from_crd
from dualcap_sandbox.schema import CelCompileError, Validator, iter_rules, prune_and_default
from dualcap_sandbox.selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from dualcap_sandbox.store import ApiError, Event, Obj, Store, conflict, not_found, now_rfc3339
from dualcap_sandbox.tables import table

JSON = "application/json"
log = logging.getLogger("dualcap_sandbox")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class Target:
    """What a request addresses."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    sub: str | None


@dataclass
class Audit:
    """Every request the API served: (verb, group, resource, subresource, namespaced)."""

    # by client: the User-Agent's product ("dualcap", "kopf", "kubectl", ...)
    by_agent: dict[tuple[str, str, str, str, str, bool], int] = field(default_factory=dict)
    writers: dict[str, int] = field(default_factory=dict)  # writes by full User-Agent
    # called with the User-Agent as a write arrives, before it is applied (fault injection:
    # a client killed here leaves the write in flight, applied or not)
    on_write: list[Callable[[str], None]] = field(default_factory=list)

    def record(
        self, verb: str, rt: ResourceType, sub: str | None, namespaced: bool, agent: str = ""
    ) -> None:
        key = (verb, rt.group, rt.plural, sub or "", namespaced)
        product = agent.split("/", 1)[0].split(" ", 1)[0]
        self.by_agent[(product, *key)] = self.by_agent.get((product, *key), 0) + 1
        if verb in ("create", "update", "patch", "delete", "deletecollection"):
            self.writers[agent] = self.writers.get(agent, 0) + 1
            for hook in list(self.on_write):
                hook(agent)

    @property
    def requests(self) -> dict[tuple[str, str, str, str, bool], int]:
        """The same, whoever the client."""
        out: dict[tuple[str, str, str, str, bool], int] = {}
        for (_, verb, group, plural, sub, namespaced), n in self.by_agent.items():
            key = (verb, group, plural, sub, namespaced)
            out[key] = out.get(key, 0) + n
        return out


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_dumps(obj), status=status, content_type=JSON, headers=headers)


def _error(err: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return _response(err.status(), err.code, headers)


class Api:
    def __init__(self, store: Store, faults: Faults | None = None, bookmark_seconds: float = 5.0):
        self.store = store
        self.faults = faults or Faults()
        self.openapi = OpenApi()
        self.audit = Audit()
        self.bookmark_seconds = bookmark_seconds
        self.pod_grace = True  # graceful pod deletion (the kubelet finishes it)
        self.validators: dict[str, Validator] = {}
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 * 2**20)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    # --- plumbing ------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        rule = self.faults.match(request.method, request.path, request.query_string)
        if rule is not None:
            if rule.latency_seconds:
                await asyncio.sleep(rule.latency_seconds)
            if rule.code and not rule.ambiguous:
                headers = {"Retry-After": str(rule.retry_after)} if rule.code == 429 else None
                reason = {
                    409: "Conflict",
                    429: "TooManyRequests",
                    500: "InternalError",
                    503: "ServiceUnavailable",
                    504: "Timeout",
                }.get(rule.code, "InternalError")
                return _error(ApiError(rule.code, reason, f"injected fault ({rule.code})"), headers)
        try:
            response = await handler(request)
        except ApiError as err:
            return _error(err)
        except Exception as err:  # a sandbox bug: answer as an API server would
            log.exception("error handling %s %s", request.method, request.path)
            return _error(ApiError(500, "InternalError", f"Internal error occurred: {err!r}"))
        if rule is not None and rule.ambiguous and rule.code:
            # The write took effect, but the client sees a failure.
            return _error(
                ApiError(
                    rule.code, "InternalError", f"injected fault after the write ({rule.code})"
                )
            )
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        segs = [s for s in path.split("/") if s]
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return _response(
                {
                    "major": "1",
                    "minor": SCHEMA_VERSION.split(".")[1],
                    "gitVersion": f"v{SCHEMA_VERSION}-dualcap-sandbox",
                    "platform": "linux/amd64",
                    "goVersion": "go1.24",
                    "compiler": "gc",
                }
            )
        if segs and segs[0] == "openapi":
            return self._openapi(segs, request.headers.get("Accept", ""))
        if path == "/api":
            host = request.host
            return _response(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": host}
                    ],
                }
            )
        if path == "/apis":
            return _response(self._group_list())
        if segs[:1] == ["api"] and len(segs) == 2:
            return _response(self._resource_list("", segs[1]))
        if segs[:1] == ["apis"] and len(segs) == 2:
            group = self._group(segs[1])
            if group is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _response(group)
        if segs[:1] == ["apis"] and len(segs) == 3:
            return _response(self._resource_list(segs[1], segs[2]))
        target = self._target(segs)
        return await self._resource(request, target)

    def _openapi(self, segs: list[str], accept: str) -> web.Response:
        types = self.store.types()
        if segs == ["openapi", "v2"]:
            if "json" not in accept and "*/*" not in accept and accept:
                # Only protobuf was asked for, which the sandbox does not speak.
                raise ApiError(
                    406, "NotAcceptable", "only application/json is served for /openapi/v2"
                )
            return web.Response(body=self.openapi.v2(types), content_type=JSON)
        if segs == ["openapi", "v3"]:
            return web.Response(body=self.openapi.v3_root(types), content_type=JSON)
        if len(segs) > 2 and segs[1] == "v3":
            doc = self.openapi.v3(types, "/".join(segs[2:]))
            if doc is not None:
                return web.Response(body=doc, content_type=JSON)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _versions_by_group(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rt in self.store.types():
            if rt.group:
                versions = out.setdefault(rt.group, [])
                if rt.version not in versions:
                    versions.append(rt.version)
        return out

    def _group(self, name: str) -> Obj | None:
        versions = self._versions_by_group().get(name)
        if not versions:
            return None
        gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": name,
            "versions": gvs,
            "preferredVersion": gvs[0],
        }

    def _group_list(self) -> Obj:
        groups = [g for g in (self._group(n) for n in sorted(self._versions_by_group())) if g]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _resource_list(self, group: str, version: str) -> Obj:
        resources = [
            r
            for rt in self.store.types()
            if rt.group == group and rt.version == version
            for r in rt.discovery()
        ]
        if not resources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        gv = f"{group}/{version}" if group else version
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }

    def _target(self, segs: list[str]) -> Target:
        if segs[:1] == ["api"] and len(segs) >= 3:
            group, version, rest = "", segs[1], segs[2:]
        elif segs[:1] == ["apis"] and len(segs) >= 4:
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        rt = self.store.rt(group, rest[0])
        if rt is None or rt.version != version:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if namespace is not None and not rt.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (
            sub is not None
            and sub not in rt.subresources
            and not (rt.kind == "Namespace" and sub == "finalize")
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return Target(rt, namespace, name, sub)

    # --- resources -----------------------------------------------------------------------

    async def _resource(self, request: web.Request, t: Target) -> web.StreamResponse:
        method = request.method
        q = request.query
        if t.name is None:
            if method == "GET":
                verb = "watch" if q.get("watch") in ("true", "1") else "list"
                self.audit.record(
                    verb, t.rt, None, t.namespace is not None, request.headers.get("User-Agent", "")
                )
                if verb == "watch":
                    return await self._watch(request, t)
                return self._list(request, t)
            if method == "POST":
                self.audit.record(
                    "create",
                    t.rt,
                    None,
                    t.namespace is not None,
                    request.headers.get("User-Agent", ""),
                )
                if t.rt.namespaced and t.namespace is None:
                    raise ApiError(
                        405,
                        "MethodNotAllowed",
                        "the server does not allow this method on the requested resource",
                    )
                return self._create(request, t, await self._body(request))
            if method == "DELETE":
                self.audit.record(
                    "deletecollection",
                    t.rt,
                    None,
                    t.namespace is not None,
                    request.headers.get("User-Agent", ""),
                )
                return self._delete_collection(request, t)
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        if t.rt.namespaced and t.namespace is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        verbs = {
            "GET": "get",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
            "POST": "create",
        }
        if method not in verbs:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        self.audit.record(
            verbs[method],
            t.rt,
            t.sub,
            t.namespace is not None,
            request.headers.get("User-Agent", ""),
        )
        if method == "GET":
            obj = self._get_or_404(t)
            if self._wants_table(request):
                return _response(
                    table(
                        t.rt,
                        [obj],
                        obj["metadata"]["resourceVersion"],
                        q.get("includeObject", "Metadata"),
                    )
                )
            return _response(obj)
        if method == "PUT":
            return self._update(request, t, await self._body(request))
        if method == "PATCH":
            return self._patch(request, t, await request.read())
        if method == "DELETE":
            body = await self._body(request, required=False)
            return self._delete(request, t, body)
        if t.sub == "eviction":
            return self._evict(t)
        if t.sub == "binding":
            return self._bind(t, await self._body(request))
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    async def _body(self, request: web.Request, required: bool = True) -> Obj:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        raw = await request.read()
        if (
            raw
            and ctype
            and not (ctype.endswith(("json", "yaml")) or ctype in ("text/plain", "*/*"))
        ):
            # Protobuf and CBOR are not spoken here; say so plainly.
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format ({ctype}) - accepted media types include: application/json, application/yaml",
            )
        if not raw:
            if required:
                raise ApiError(400, "BadRequest", "the request body is empty")
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            try:
                body = yaml.safe_load(raw)
            except yaml.YAMLError as err:
                raise ApiError(
                    400, "BadRequest", f"the body is not valid JSON or YAML: {err}"
                ) from err
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be an object")
        return body

    def _get_or_404(self, t: Target) -> Obj:
        obj = self.store.get(t.rt, t.namespace, t.name or "")
        if obj is None:
            raise not_found(t.rt, t.name or "")
        return obj

    @staticmethod
    def _wants_table(request: web.Request) -> bool:
        return "as=Table" in request.headers.get("Accept", "")

    def _selectors(self, request: web.Request) -> tuple[Any, Any]:
        try:
            return parse_label_selector(request.query.get("labelSelector")), parse_field_selector(
                request.query.get("fieldSelector")
            )
        except SelectorError as err:
            raise ApiError(400, "BadRequest", str(err)) from err

    def _list(self, request: web.Request, t: Target) -> web.Response:
        labels, fields = self._selectors(request)
        items = [
            o
            for o in self.store.list_objects(t.rt, t.namespace)
            if labels_match(labels, o["metadata"].get("labels")) and fields_match(fields, o)
        ]
        items.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        rv = str(self.store.rv)
        meta: Obj = {"resourceVersion": rv}
        token = request.query.get("continue")
        if token:
            try:
                after = json.loads(base64.urlsafe_b64decode(token.encode()))
            except ValueError as err:
                raise ApiError(400, "BadRequest", "invalid continue token") from err
            items = [
                o
                for o in items
                if [o["metadata"].get("namespace") or "", o["metadata"]["name"]] > after
            ]
        limit = request.query.get("limit")
        if limit and limit.isdigit() and 0 < int(limit) < len(items):
            items = items[: int(limit)]
            last = items[-1]["metadata"]
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps([last.get("namespace") or "", last["name"]]).encode()
            ).decode()
            meta["remainingItemCount"] = 1
        if self._wants_table(request):
            out = table(t.rt, items, rv, request.query.get("includeObject", "Metadata"))
            out["metadata"].update({k: v for k, v in meta.items() if k == "continue"})
            return _response(out)
        return _response(
            {
                "kind": f"{t.rt.kind}List",
                "apiVersion": t.rt.api_version,
                "metadata": meta,
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        labels, fields = self._selectors(request)
        q = request.query
        raw_rv = q.get("resourceVersion")
        initial = q.get("sendInitialEvents") in ("true", "1")
        since = (
            None
            if initial
            else int(raw_rv)
            if raw_rv and raw_rv.isdigit() and raw_rv != "0"
            else None
        )
        try:
            watcher, backlog = self.store.watch(t.rt, t.namespace, since)
        except ApiError as err:
            if err.code != 410:
                raise
            # As the API server does: the watch opens (200), and its one event is an ERROR
            # carrying the 410 Status; the client re-lists.
            gone = web.StreamResponse(
                headers={"Content-Type": JSON, "Transfer-Encoding": "chunked"}
            )
            await gone.prepare(request)
            await gone.write(_dumps({"type": "ERROR", "object": err.status()}) + b"\n")
            await gone.write_eof()
            return gone
        timeout = float(q.get("timeoutSeconds") or 1800)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        response = web.StreamResponse(
            headers={"Content-Type": JSON, "Transfer-Encoding": "chunked"}
        )
        await response.prepare(request)

        def visible(o: Obj | None) -> bool:
            return (
                o is not None
                and labels_match(labels, o["metadata"].get("labels"))
                and fields_match(fields, o)
            )

        async def send(type_: str, obj: Obj) -> None:
            await response.write(_dumps({"type": type_, "object": obj}) + b"\n")

        async def deliver(event: Event) -> None:
            now_in = visible(event.obj)
            if event.type == "MODIFIED" and (labels or fields):
                was_in = visible(event.old)
                if now_in and not was_in:
                    await send("ADDED", event.obj)
                elif was_in and not now_in:
                    await send("DELETED", event.obj)
                elif now_in:
                    await send("MODIFIED", event.obj)
            elif now_in or (event.type == "DELETED" and visible(event.old)):
                await send(event.type, event.obj)

        deadline = time.monotonic() + timeout
        try:
            for first in backlog:
                await deliver(first)
            if initial:
                # A streaming list (sendInitialEvents): the initial events end with this.
                end = {
                    "resourceVersion": str(self.store.rv),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                }
                await send(
                    "BOOKMARK", {"kind": t.rt.kind, "apiVersion": t.rt.api_version, "metadata": end}
                )
            while not watcher.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                wait = min(remaining, self.bookmark_seconds) if bookmarks else remaining
                try:
                    async with asyncio.timeout(wait):
                        event = await watcher.queue.get()
                except TimeoutError:
                    if bookmarks:
                        await send(
                            "BOOKMARK",
                            {
                                "kind": t.rt.kind,
                                "apiVersion": t.rt.api_version,
                                "metadata": {"resourceVersion": str(self.store.rv)},
                            },
                        )
                    continue
                if event is None:
                    break
                await deliver(event)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unwatch(t.rt, watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    # --- writes --------------------------------------------------------------------------

    def _check_meta(self, t: Target, obj: Obj) -> None:
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
        if name is not None:
            pattern = DNS_LABEL if t.rt.kind == "Namespace" else DNS_SUBDOMAIN
            limit = 63 if t.rt.kind == "Namespace" else 253
            if not isinstance(name, str) or not pattern.match(name) or len(name) > limit:
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
        if t.rt.namespaced and t.namespace:
            ns = self.store.get(self.store.rt("", "namespaces"), None, t.namespace)  # type: ignore[arg-type]
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
                    f'{t.rt.plural} "{name}" is forbidden: unable to create new content in namespace {t.namespace} because it is being terminated',
                )

    def _validate(
        self, request: Any, t: Target, obj: Obj, old: Obj | None
    ) -> tuple[Obj, list[str]]:
        """Prune, default and validate a custom resource; (object, warnings)."""
        rt = t.rt
        warnings: list[str] = []
        if rt.custom and rt.schema:
            schema = rt.schema
            pruned = prune_and_default(copy.deepcopy(obj), schema)
            # apiVersion, kind and metadata are never pruned, declared in the schema or not
            for key in ("apiVersion", "kind", "metadata"):
                if key in obj:
                    pruned[key] = obj[key]
            unknown = _unknown_fields(obj, pruned)
            mode = request.query.get("fieldValidation", "Warn")
            if unknown and mode == "Strict":
                raise ApiError(
                    400,
                    "BadRequest",
                    "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown),
                )
            if unknown and mode == "Warn":
                warnings += [f'unknown field "{u}"' for u in unknown]
            validator = self.validators.get(rt.key)
            if validator is None or validator.schema is not schema:
                validator = self.validators[rt.key] = Validator(schema)
            errors = [
                e for e in validator.validate(pruned, old) if not e.path.startswith("metadata")
            ]
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
                text = "; ".join(str(e) for e in errors) if len(errors) > 1 else str(errors[0])
                if len(errors) > 1:
                    text = "[" + ", ".join(str(e) for e in errors) + "]"
                raise ApiError(
                    422,
                    "Invalid",
                    f'{rt.kind}.{rt.group} "{name}" is invalid: {text}',
                    {"name": name, "group": rt.group, "kind": rt.kind, "causes": causes},
                )
            obj = pruned
        elif rt.kind == "CustomResourceDefinition":
            self._validate_crd(obj)
        elif rt.kind == "Pod" and old is None:
            _default_pod(obj)
        elif rt.kind in ("Node", "Namespace") and old is None:
            obj.setdefault("spec", {})
            if rt.kind == "Namespace":
                obj["spec"].setdefault("finalizers", ["kubernetes"])
                obj["status"] = {"phase": "Active"}
        return obj, warnings

    def _validate_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        name = crd.get("metadata", {}).get("name")
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
                    from dualcap_sandbox.schema import compile_rule

                    compile_rule(rule)
            except CelCompileError as err:
                raise ApiError(
                    422,
                    "Invalid",
                    f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: {err}',
                ) from err

    def create_object(self, obj: Obj, field_validation: str = "Strict") -> Obj:
        """Create an object as a client would (validation included), without HTTP: how
        ``dualcap sandbox --load`` and test fixtures seed the cluster."""
        rt = self.store.rt_for(str(obj.get("apiVersion")), str(obj.get("kind")))
        if rt is None:
            raise ApiError(
                404,
                "NotFound",
                f'no matches for kind "{obj.get("kind")}" in version "{obj.get("apiVersion")}"',
            )
        namespace = (obj.get("metadata") or {}).get("namespace") or (
            "default" if rt.namespaced else None
        )
        request = _Internal({"fieldValidation": field_validation}, "POST")
        response = self._create(request, Target(rt, namespace, None, None), copy.deepcopy(obj))  # type: ignore[arg-type]
        created: Obj = json.loads(response.body)  # type: ignore[arg-type]
        return created

    def _create(self, request: web.Request, t: Target, obj: Obj) -> web.Response:
        self._check_meta(t, obj)
        if t.rt.custom and t.rt.has_status:
            obj.pop("status", None)  # status is written through /status only
        obj, warnings = self._validate(request, t, obj, None)
        if request.query.get("dryRun"):
            return _response(obj, 201)
        created = self.store.create(t.rt, obj)
        if t.rt.kind == "CustomResourceDefinition":
            created = self._established(created)
        return _response(created, 201, _warning_headers(warnings))

    def _established(self, crd: Obj) -> Obj:
        for rt in from_crd(crd):
            self.store.register(rt)
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
            "acceptedNames": crd["spec"]["names"],
            "storedVersions": [
                v["name"] for v in crd["spec"].get("versions", []) if v.get("storage")
            ],
        }
        crd_rt = self.store.rt("apiextensions.k8s.io", "customresourcedefinitions")
        assert crd_rt is not None
        updated = dict(crd, status=status)
        updated["metadata"] = dict(crd["metadata"])
        return self.store.replace(crd_rt, updated, crd)

    def _apply_update(self, request: web.Request, t: Target, new: Obj, old: Obj) -> web.Response:
        """Store ``new`` in place of ``old`` with status-subresource and generation rules."""
        rt = t.rt
        new.setdefault("metadata", {})
        if t.sub == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status")
            if merged["status"] is None:
                merged.pop("status")
            new = merged
        elif rt.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        meta = new["metadata"]
        meta["generation"] = old["metadata"].get("generation", 1)
        if _spec_changed(rt, old, new):
            meta["generation"] += 1
        new, warnings = self._validate(request, t, new, old)
        if request.query.get("dryRun"):
            return _response(new)
        if _same(old, new):
            return _response(old)  # a no-op write does not bump the resourceVersion
        stored = self.store.replace(rt, new, old)
        if (
            rt.kind == "CustomResourceDefinition"
            and t.sub != "status"
            and not stored["metadata"].get("deletionTimestamp")
        ):
            stored = self._established(stored)
        return _response(stored, headers=_warning_headers(warnings))

    def _update(self, request: web.Request, t: Target, obj: Obj) -> web.Response:
        old = self._get_or_404(t)
        self._check_meta(t, obj)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != t.name:
            raise ApiError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        meta["name"] = t.name
        rv = meta.get("resourceVersion")
        if not rv:
            if t.rt.custom or t.rt.kind in ("Node", "Pod"):
                raise ApiError(
                    422,
                    "Invalid",
                    f'{t.rt.kind} "{t.name}" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update',
                )
        elif rv != old["metadata"]["resourceVersion"]:
            raise conflict(
                t.rt,
                t.name or "",
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        if t.sub != "status":
            for key in ("ownerReferences", "finalizers", "labels", "annotations"):
                if key not in meta:
                    meta.pop(key, None)
        return self._apply_update(request, t, obj, old)

    def _patch(self, request: web.Request, t: Target, raw: bytes) -> web.Response:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        old = self.store.get(t.rt, t.namespace, t.name or "")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            try:
                body = yaml.safe_load(raw)
            except yaml.YAMLError as err:
                raise ApiError(
                    400, "BadRequest", f"the patch is not valid JSON or YAML: {err}"
                ) from err
        if ctype == "application/apply-patch+yaml":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "an apply patch must be an object")
            if old is None:
                if t.sub:
                    raise not_found(t.rt, t.name or "")
                body.setdefault("metadata", {})["name"] = t.name
                return self._create(request, t, body)
            ctype = (
                "application/strategic-merge-patch+json"
                if not t.rt.custom
                else "application/merge-patch+json"
            )
        if old is None:
            raise not_found(t.rt, t.name or "")
        try:
            if ctype == "application/json-patch+json":
                new = json_patch(old, body)
            elif ctype == "application/merge-patch+json":
                new = merge_patch(old, body)
            elif ctype == "application/strategic-merge-patch+json":
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
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
                )
        except PatchError as err:
            raise ApiError(
                err.code, "Invalid" if err.code == 422 else "BadRequest", str(err)
            ) from err
        if not isinstance(new, dict):
            raise ApiError(422, "Invalid", "the patched object is not an object")
        rv = (
            (body or {}).get("metadata", {}).get("resourceVersion")
            if isinstance(body, dict)
            else None
        )
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(
                t.rt,
                t.name or "",
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        new = copy.deepcopy(new)
        new.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new["metadata"].get("name") != t.name:
            raise ApiError(422, "Invalid", "metadata.name cannot be changed")
        return self._apply_update(request, t, new, old)

    def _delete(self, request: web.Request, t: Target, options: Obj) -> web.Response:
        old = self._get_or_404(t)
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
        if request.query.get("dryRun") or options.get("dryRun"):
            return _response(old)
        grace_q = request.query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        policy = request.query.get("propagationPolicy", options.get("propagationPolicy"))
        obj = self.delete_object(t.rt, old, grace_q, policy)
        if (
            obj["metadata"].get("deletionTimestamp")
            and self.store.get(t.rt, t.namespace, t.name or "") is not None
        ):
            return _response(obj, 200)
        return _response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": t.name,
                    "group": t.rt.group,
                    "kind": t.rt.plural,
                    "uid": old["metadata"]["uid"],
                },
            }
        )

    def delete_object(
        self, rt: ResourceType, old: Obj, grace: Any = None, policy: str | None = None
    ) -> Obj:
        graceful = (
            rt.kind == "Pod"
            and self.pod_grace
            and bool((old.get("spec") or {}).get("nodeName"))
            and str(grace) != "0"
        )
        if policy == "Orphan":
            for dep_rt, dep in self.store.dependents(old["metadata"]["uid"]):
                refs = [
                    r
                    for r in dep["metadata"].get("ownerReferences") or []
                    if r.get("uid") != old["metadata"]["uid"]
                ]
                new = copy.deepcopy(dep)
                new["metadata"]["ownerReferences"] = refs
                if not refs:
                    del new["metadata"]["ownerReferences"]
                self.store.replace(dep_rt, new, dep)
        if rt.kind == "CustomResourceDefinition":
            spec = old["spec"]
            served = self.store.rt(spec["group"], spec["names"]["plural"])
            if served is not None:
                for item in list(self.store.list_objects(served)):
                    self.store.remove(served, item)
                self.store.unregister(spec["group"], spec["names"]["plural"])
        if rt.kind == "Namespace":
            obj = copy.deepcopy(old)
            obj["metadata"]["deletionTimestamp"] = (
                obj["metadata"].get("deletionTimestamp") or now_rfc3339()
            )
            obj.setdefault("status", {})["phase"] = "Terminating"
            stored = (
                self.store.replace(rt, obj, old)
                if not old["metadata"].get("deletionTimestamp")
                else old
            )
            return stored
        return self.store.delete(rt, old, grace=graceful)

    def _delete_collection(self, request: web.Request, t: Target) -> web.Response:
        labels, fields = self._selectors(request)
        items = [
            o
            for o in list(self.store.list_objects(t.rt, t.namespace))
            if labels_match(labels, o["metadata"].get("labels")) and fields_match(fields, o)
        ]
        for o in items:
            self.delete_object(t.rt, o)
        return _response(
            {
                "kind": f"{t.rt.kind}List",
                "apiVersion": t.rt.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)},
                "items": items,
            }
        )

    def _evict(self, t: Target) -> web.Response:
        old = self._get_or_404(t)
        self.delete_object(t.rt, old)
        return _created_status()

    def _bind(self, t: Target, body: Obj) -> web.Response:
        old = self._get_or_404(t)
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
        self.store.replace(t.rt, new, old)
        return _created_status()


@dataclass
class _Internal:
    """The parts of a request the write path reads, for writes made without HTTP."""

    query: dict[str, str]
    method: str


def _created_status() -> web.Response:
    """The ``kind: Status`` a subresource create (eviction, binding) answers with."""
    return _response(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
        201,
    )


def _warning_headers(warnings: list[str]) -> dict[str, str] | None:
    if not warnings:
        return None
    return {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)}


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


def _spec_changed(rt: ResourceType, old: Obj, new: Obj) -> bool:
    if rt.custom:
        strip = ("metadata", "status", "apiVersion", "kind")
        return {k: v for k, v in old.items() if k not in strip} != {
            k: v for k, v in new.items() if k not in strip
        }
    return old.get("spec") != new.get("spec")


def _same(old: Obj, new: Obj) -> bool:
    a = dict(old, metadata={k: v for k, v in old["metadata"].items() if k != "resourceVersion"})
    b = dict(new, metadata={k: v for k, v in new["metadata"].items() if k != "resourceVersion"})
    return a == b


def _default_pod(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    if not isinstance(spec.get("containers"), list) or not spec["containers"]:
        raise ApiError(
            422,
            "Invalid",
            f'Pod "{pod["metadata"].get("name", "")}" is invalid: spec.containers: Required value',
        )
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )
    pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
