"""An in-memory Kubernetes API behind an `httpx.MockTransport`, for unit tests of client-side code.

Enough of the API for informers, controllers, leader election and event recording: get, list (label
selector of equality terms, limit/continue paging), create, update (resourceVersion compare-and-swap → 409),
merge patch, delete, watch (resume from a resourceVersion, bookmarks, 410 when the version was compacted).
Tests can inject failures (`fail_next`), end open watches (`close_watches`) and read the request log.

    api = FakeApiServer()
    client = ApiClient("http://fake", transport=api.transport())
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from aiokube.api.errors import ApiError, already_exists, conflict, expired, not_found
from aiokube.api.resources import ResourceInfo, by_gvr
from aiokube.api.types import Obj


@dataclass
class _Route:
    info: ResourceInfo
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclass
class _Watch:
    info: ResourceInfo
    namespace: str | None
    queue: asyncio.Queue[Obj | None] = field(default_factory=asyncio.Queue)


@dataclass
class _Failure:
    method: str
    status: int
    headers: dict[str, str]
    path_contains: str


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _labels_match(obj: Obj, selector: str | None) -> bool:
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.strip() and term.strip() not in labels:
            return False
    return True


class FakeApiServer:
    def __init__(self) -> None:
        self.revision = 1
        self.compacted_revision = 0
        self.objects: dict[tuple[str, str, str, str], Obj] = {}  # (group, plural, namespace, name)
        self.events: list[tuple[int, str, Obj, ResourceInfo]] = []  # (revision, type, object, resource)
        self.requests: list[httpx.Request] = []
        self._watches: list[_Watch] = []
        self._failures: list[_Failure] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- test controls --------------------------------------------------------------------------------------

    def fail_next(self, method: str, status: int, *, times: int = 1, headers: dict[str, str] | None = None,
                  path_contains: str = "") -> None:
        for _ in range(times):
            self._failures.append(_Failure(method.upper(), status, headers or {}, path_contains))

    def clear_failures(self) -> None:
        self._failures.clear()

    def close_watches(self) -> None:
        """End every open watch stream, as a server does at timeoutSeconds."""
        for watch in self._watches:
            watch.queue.put_nowait(None)
        self._watches.clear()

    def compact(self) -> None:
        """Forget history up to now: watches from older versions get 410 Expired."""
        self.compacted_revision = self.revision

    def send_bookmark(self, resource: ResourceInfo) -> None:
        for watch in self._watches:
            if watch.info == resource:
                watch.queue.put_nowait({"type": "BOOKMARK", "object": {
                    "kind": resource.kind, "apiVersion": resource.api_version,
                    "metadata": {"resourceVersion": str(self.revision)}}})

    @property
    def open_watches(self) -> int:
        return len(self._watches)

    def put(self, info: ResourceInfo, obj: Obj) -> Obj:
        """Create or replace an object directly (as another client would), emitting the watch event."""
        meta = obj.setdefault("metadata", {})
        key = (info.group, info.plural, meta.get("namespace", "") if info.namespaced else "", meta["name"])
        kind = "MODIFIED" if key in self.objects else "ADDED"
        meta.setdefault("uid", str(uuid.uuid4()))
        obj.setdefault("apiVersion", info.api_version)
        obj.setdefault("kind", info.kind)
        return self._store(info, key, obj, kind)

    def remove(self, info: ResourceInfo, namespace: str, name: str) -> None:
        key = (info.group, info.plural, namespace if info.namespaced else "", name)
        obj = self.objects.pop(key)
        self.revision += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self._emit(info, "DELETED", obj)

    # -- request handling --------------------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for failure in self._failures:
            if failure.method == request.method and failure.path_contains in request.url.path:
                self._failures.remove(failure)
                status = ApiError(failure.status, f"injected failure {failure.status}").status()
                return httpx.Response(failure.status, json=status, headers=failure.headers)
        try:
            route = self._route(request.url.path)
            return await self._dispatch(request, route)
        except ApiError as exc:
            return httpx.Response(exc.code, json=exc.status())

    def _route(self, path: str) -> _Route:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"]:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"]:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, f"no route for {path}")
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        info = by_gvr(group, version, rest[0]) if rest else None
        if info is None:
            raise ApiError(404, f"no resource at {path}")
        return _Route(info, namespace, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)

    async def _dispatch(self, request: httpx.Request, route: _Route) -> httpx.Response:
        params = request.url.params
        method = request.method
        if method == "GET" and route.name is None:
            if params.get("watch") in ("true", "1"):
                return self._watch(route, params)
            return httpx.Response(200, json=self._list(route, params))
        if method == "GET":
            return httpx.Response(200, json=copy.deepcopy(self._get(route)))
        body: Any = json.loads(request.content) if request.content else {}
        if method == "POST":
            return httpx.Response(201, json=self._create(route, body))
        if method == "PUT":
            return httpx.Response(200, json=self._update(route, body))
        if method == "PATCH":
            current = self._get(route)
            patched = _merge_patch(current, body)
            patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            return httpx.Response(200, json=self._update(route, patched))
        if method == "DELETE":
            current = self._get(route)
            self.remove(route.info, route.namespace or "", route.name or "")
            return httpx.Response(200, json=current)
        raise ApiError(405, f"{method} not supported")

    def _key(self, route: _Route, name: str | None = None) -> tuple[str, str, str, str]:
        namespace = (route.namespace or "") if route.info.namespaced else ""
        return (route.info.group, route.info.plural, namespace, name or route.name or "")

    def _get(self, route: _Route) -> Obj:
        obj = self.objects.get(self._key(route))
        if obj is None:
            raise not_found(route.info.plural, route.info.group, route.name or "")
        return obj

    def _list(self, route: _Route, params: httpx.QueryParams) -> Obj:
        items = [copy.deepcopy(o) for (g, p, ns, _), o in sorted(self.objects.items())
                 if g == route.info.group and p == route.info.plural
                 and (route.namespace is None or ns == route.namespace)
                 and _labels_match(o, params.get("labelSelector"))]
        start = int(params.get("continue") or 0)
        limit = int(params.get("limit") or 0) or len(items)
        page = items[start:start + limit]
        metadata: Obj = {"resourceVersion": str(self.revision)}
        if start + limit < len(items):
            metadata["continue"] = str(start + limit)
        return {"kind": f"{route.info.kind}List", "apiVersion": route.info.api_version,
                "metadata": metadata, "items": page}

    def _create(self, route: _Route, body: Obj) -> Obj:
        if route.subresource:
            return {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}
        name = body["metadata"]["name"]
        key = self._key(route, name)
        if key in self.objects:
            raise already_exists(route.info.plural, route.info.group, name)
        if route.info.namespaced:
            body["metadata"]["namespace"] = route.namespace
        body["metadata"]["uid"] = str(uuid.uuid4())
        return copy.deepcopy(self._store(route.info, key, body, "ADDED"))

    def _update(self, route: _Route, body: Obj) -> Obj:
        current = self._get(route)
        sent_rv = (body.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise conflict(route.info.plural, route.info.group, route.name or "",
                           "the object has been modified; please apply your changes to the latest version "
                           "and try again")
        if route.subresource == "status":
            body = {**current, "status": body.get("status")}
        body["metadata"]["uid"] = current["metadata"]["uid"]
        return copy.deepcopy(self._store(route.info, self._key(route), body, "MODIFIED"))

    def _store(self, info: ResourceInfo, key: tuple[str, str, str, str], obj: Obj, kind: str) -> Obj:
        self.revision += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self.objects[key] = obj
        self._emit(info, kind, obj)
        return obj

    def _emit(self, info: ResourceInfo, kind: str, obj: Obj) -> None:
        self.events.append((self.revision, kind, copy.deepcopy(obj), info))
        for watch in self._watches:
            if self._watch_sees(watch, info, obj):
                watch.queue.put_nowait({"type": kind, "object": copy.deepcopy(obj)})

    @staticmethod
    def _watch_sees(watch: _Watch, info: ResourceInfo, obj: Obj) -> bool:
        return watch.info == info and (watch.namespace is None
                                       or (obj.get("metadata") or {}).get("namespace") == watch.namespace)

    def _watch(self, route: _Route, params: httpx.QueryParams) -> httpx.Response:
        since = int(params.get("resourceVersion") or 0)
        watch = _Watch(route.info, route.namespace)
        if since and since < self.compacted_revision:
            watch.queue.put_nowait({"type": "ERROR", "object": expired(
                f"too old resource version: {since} ({self.compacted_revision})").status()})
            watch.queue.put_nowait(None)
        else:
            for revision, kind, obj, info in self.events:
                if revision > since and self._watch_sees(watch, info, obj):
                    watch.queue.put_nowait({"type": kind, "object": copy.deepcopy(obj)})
            self._watches.append(watch)
        return httpx.Response(200, headers={"Content-Type": "application/json"}, content=self._stream(watch))

    async def _stream(self, watch: _Watch) -> AsyncIterator[bytes]:
        try:
            while True:
                event = await watch.queue.get()
                if event is None:
                    return
                yield (json.dumps(event) + "\n").encode()
        finally:
            if watch in self._watches:
                self._watches.remove(watch)
