"""The sandbox's HTTP API: a Kubernetes API server on aiohttp, in memory.

This module is the HTTP layer (routing, content types including kubectl's protobuf
bodies, verbs); discovery is in ``discovery``, watches in ``watch``, and what each kind's
writes mean in ``registry``. Together they answer what kubectl, kopf and the Kubernetes
clients ask of a real API server: discovery, OpenAPI, list (with selectors, paging, server-side Tables), watch (from a
resourceVersion, bookmarks, 410 Gone), get, create, update, patch (merge, JSON, strategic,
server-side apply), delete (finalizers, preconditions, grace), delete collection, the
status subresource, pod eviction and binding, and CRDs whose custom resources are pruned,
defaulted and validated (OpenAPI constraints and CEL rules) as the real server does.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from dualcap_sandbox import discovery, protobuf
from dualcap_sandbox.discovery import NOT_FOUND
from dualcap_sandbox.faults import Faults
from dualcap_sandbox.openapi import OpenApi
from dualcap_sandbox.registry import Options, Registry, Target, pods
from dualcap_sandbox.resources import ResourceType
from dualcap_sandbox.selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from dualcap_sandbox.store import ApiError, Obj, Store
from dualcap_sandbox.tables import table
from dualcap_sandbox.watch import serve_watch

JSON = "application/json"
NOT_ALLOWED = "the server does not allow this method on the requested resource"
log = logging.getLogger("dualcap_sandbox")


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
    """The HTTP layer: routing, discovery, content types and verbs. What a write means for
    each kind is the registry's (``dualcap_sandbox.registry``); watches are ``watch``'s."""

    def __init__(self, store: Store, faults: Faults | None = None, bookmark_seconds: float = 5.0):
        self.store = store
        self.faults = faults or Faults()
        self.registry = Registry(store)
        self.openapi = OpenApi()
        self.audit = Audit()
        self.bookmark_seconds = bookmark_seconds
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 * 2**20)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    # --- writes without HTTP (seeding, the cluster's controllers) -------------------------

    def create_object(self, obj: Obj, field_validation: str = "Strict") -> Obj:
        """Create an object as a client would (validation included), without HTTP: how
        ``dualcap-sandbox --load`` and test fixtures seed the cluster."""
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
        created, _ = self.registry.create(
            Target(rt, namespace, None), copy.deepcopy(obj), Options(field_validation)
        )
        return created

    def delete_object(
        self, rt: ResourceType, old: Obj, grace: Any = None, policy: str | None = None
    ) -> Obj:
        """Delete as a client's DELETE would (graceful pods, finalizers, orphaning)."""
        return self.registry.delete_object(rt, old, grace, policy)

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
            return _response(discovery.version())
        if segs and segs[0] == "openapi":
            return self._openapi(segs, request.headers.get("Accept", ""))
        if path == "/api":
            return _response(discovery.core_versions(request.host))
        if path == "/apis":
            return _response(discovery.group_list(self.store))
        if segs[:1] == ["api"] and len(segs) == 2:
            return _response(discovery.resource_list(self.store, "", segs[1]))
        if segs[:1] == ["apis"] and len(segs) == 2:
            return _response(discovery.group(self.store, segs[1]))
        if segs[:1] == ["apis"] and len(segs) == 3:
            return _response(discovery.resource_list(self.store, segs[1], segs[2]))
        return await self._resource(request, self._target(segs))

    def _openapi(self, segs: list[str], accept: str) -> web.Response:
        types = self.store.types()
        if segs == ["openapi", "v2"]:
            if "json" not in accept and "*/*" not in accept and accept:
                # Only protobuf was asked for, which the sandbox does not serve.
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
        raise ApiError(404, "NotFound", NOT_FOUND)

    def _target(self, segs: list[str]) -> Target:
        if segs[:1] == ["api"] and len(segs) >= 3:
            group, version, rest = "", segs[1], segs[2:]
        elif segs[:1] == ["apis"] and len(segs) >= 4:
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise ApiError(404, "NotFound", NOT_FOUND)
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        rt = self.store.rt(group, rest[0])
        if rt is None or rt.version != version:
            raise ApiError(404, "NotFound", NOT_FOUND)
        if namespace is not None and not rt.namespaced:
            raise ApiError(404, "NotFound", NOT_FOUND)
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (
            sub is not None
            and sub not in rt.subresources
            and not (rt.kind == "Namespace" and sub == "finalize")
        ):
            raise ApiError(404, "NotFound", NOT_FOUND)
        return Target(rt, namespace, name, sub)

    # --- verbs ---------------------------------------------------------------------------

    async def _resource(self, request: web.Request, t: Target) -> web.StreamResponse:
        method = request.method
        agent = request.headers.get("User-Agent", "")
        namespaced = t.namespace is not None
        if t.name is None:
            verb = COLLECTION_VERBS.get(method)
            if verb == "list" and request.query.get("watch") in ("true", "1"):
                verb = "watch"
            if verb is None:
                raise ApiError(405, "MethodNotAllowed", NOT_ALLOWED)
            self.audit.record(verb, t.rt, None, namespaced, agent)
            if verb == "watch":
                return await serve_watch(
                    request, t, self.store, self._selectors(request), self.bookmark_seconds
                )
            if verb == "list":
                return self._list(request, t)
            if verb == "create":
                if t.rt.namespaced and t.namespace is None:
                    raise ApiError(405, "MethodNotAllowed", NOT_ALLOWED)
                obj, warnings = self.registry.create(
                    t, await self._body(request), _options(request)
                )
                return _response(obj, 201, _warning_headers(warnings))
            return self._delete_collection(request, t)
        if t.rt.namespaced and t.namespace is None:
            raise ApiError(404, "NotFound", NOT_FOUND)
        verb = OBJECT_VERBS.get(method)
        if verb is None:
            raise ApiError(405, "MethodNotAllowed", NOT_ALLOWED)
        self.audit.record(verb, t.rt, t.sub, namespaced, agent)
        if verb == "get":
            obj = self.registry.get(t)
            if _wants_table(request):
                rv = obj["metadata"]["resourceVersion"]
                include = request.query.get("includeObject", "Metadata")
                return _response(table(t.rt, [obj], rv, include))
            return _response(obj)
        if verb == "update":
            obj, warnings = self.registry.update(t, await self._body(request), _options(request))
            return _response(obj, headers=_warning_headers(warnings))
        if verb == "patch":
            body = _parse(await request.read(), "the patch")
            obj, warnings, created = self.registry.patch(
                t, _content_type(request), body, _options(request)
            )
            return _response(obj, 201 if created else 200, _warning_headers(warnings))
        if verb == "delete":
            options = await self._body(request, required=False)
            obj, there = self.registry.delete(t, options, _options(request, options))
            if there:
                return _response(obj)
            return _response(_deleted_status(t, obj))
        if t.sub == "eviction":
            pods.evict(self.registry, t)
            return _created_status()
        if t.sub == "binding":
            pods.bind(self.registry, t, await self._body(request))
            return _created_status()
        raise ApiError(405, "MethodNotAllowed", NOT_ALLOWED)

    async def _body(self, request: web.Request, required: bool = True) -> Obj:
        ctype = _content_type(request)
        raw = await request.read()
        if not raw:
            if required:
                raise ApiError(400, "BadRequest", "the request body is empty")
            return {}
        if ctype == protobuf.MEDIA_TYPE:
            try:
                return protobuf.decode(raw)
            except protobuf.ProtobufError as err:
                if err.supported:
                    raise ApiError(400, "BadRequest", str(err)) from err
                raise ApiError(415, "UnsupportedMediaType", str(err)) from err
        if ctype and not (ctype.endswith(("json", "yaml")) or ctype in ("text/plain", "*/*")):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format ({ctype}) - accepted media types include: application/json, application/yaml, {protobuf.MEDIA_TYPE}",
            )
        body = _parse(raw, "the body")
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be an object")
        return body

    def _selectors(self, request: web.Request) -> tuple[Any, Any]:
        try:
            return parse_label_selector(request.query.get("labelSelector")), parse_field_selector(
                request.query.get("fieldSelector")
            )
        except SelectorError as err:
            raise ApiError(400, "BadRequest", str(err)) from err

    def _selected(self, request: web.Request) -> Callable[[Obj], bool]:
        labels, fields = self._selectors(request)
        return lambda o: (
            labels_match(labels, o["metadata"].get("labels")) and fields_match(fields, o)
        )

    def _list(self, request: web.Request, t: Target) -> web.Response:
        selected = self._selected(request)
        items = [o for o in self.store.list_objects(t.rt, t.namespace) if selected(o)]
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
        if _wants_table(request):
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

    def _delete_collection(self, request: web.Request, t: Target) -> web.Response:
        items = self.registry.delete_collection(t, self._selected(request))
        return _response(
            {
                "kind": f"{t.rt.kind}List",
                "apiVersion": t.rt.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)},
                "items": items,
            }
        )


COLLECTION_VERBS = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}
OBJECT_VERBS = {
    "GET": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
    "POST": "create",
}


def _content_type(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";")[0].strip()


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _parse(raw: bytes, what: str) -> Any:
    """JSON, else YAML (a superset); None for an empty body."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ApiError(400, "BadRequest", f"{what} is not valid JSON or YAML: {err}") from err


def _options(request: web.Request, delete_options: Obj | None = None) -> Options:
    q, body = request.query, delete_options or {}
    return Options(
        field_validation=q.get("fieldValidation", "Warn"),
        dry_run=bool(q.get("dryRun") or body.get("dryRun")),
        grace_period=q.get("gracePeriodSeconds", body.get("gracePeriodSeconds")),
        propagation=q.get("propagationPolicy", body.get("propagationPolicy")),
    )


def _deleted_status(t: Target, old: Obj) -> Obj:
    return {
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
