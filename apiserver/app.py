"""The API server's ASGI application: one small dispatcher in front of the routes, the lifespan that connects
to etcd, bootstraps the system namespaces and the `kubernetes` Service and owns the background tasks (the etcd
compactor) in its task group, and the error boundary (ApiError → Status, storage errors →
their Status, anything unexpected → a logged 500 Status, never a traceback to the client)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from aiokube.api.errors import ApiError, status_for
from apiserver import metrics_api
from apiserver.allocators import ServiceAllocators
from apiserver.compactor import Compactor
from apiserver.config import Config
from apiserver.endpoint_leases import EndpointLeaseReconciler
from apiserver.handlers.common import json_response, storage_error_status, storage_errors
from apiserver.handlers.namespaces import NamespaceLifecycle
from apiserver.handlers.state import ServerState, load_schemas
from apiserver.kubernetes_service import ensure_kubernetes_service
from apiserver.metrics import InstrumentedStorage, Metrics
from apiserver.registry import Registry
from apiserver.routes import discovery, openapi, system
from apiserver.routes.resources import Target, resolve, serve
from apiserver.storage.interface import Storage, StorageError

log = logging.getLogger("apiserver")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
Handler = Callable[[ServerState, Request], Awaitable[Response]]


def _json_bytes(body: bytes) -> Response:
    return Response(body, media_type="application/json")


_COLLECTION_TARGETS = 4096
"""Resolved collection paths kept; past that many (namespaces times kinds) the cache starts again."""


class ApiServerApp:
    """ASGI app. `storage_factory` is injectable so tests and benchmarks can share or wrap a storage."""

    def __init__(self, config: Config, storage_factory: Callable[[], Awaitable[Storage]] | None = None) -> None:
        self.config = config
        self._storage_factory = storage_factory or self._connect_etcd
        self.state: ServerState | None = None
        self._collections: dict[str, Target] = {}  # resolved collection paths (Targets are never changed)
        self._fixed: dict[str, Handler] = {
            "/version": system.version,
            "/healthz": system.livez,
            "/livez": system.livez,
            "/readyz": system.readyz,
            "/metrics": system.metrics,
            "/api": self._api,
            "/apis": self._apis,
            "/openapi/v3": self._openapi_index,
            "/openapi/v2": self._openapi_v2,
        }

    async def _connect_etcd(self) -> Storage:
        from apiserver.storage.etcd import EtcdStorage
        from apiserver.storage.etcd_tls import ClientTlsFiles

        config = self.config
        tls = ClientTlsFiles(config.etcd_cafile, config.etcd_certfile, config.etcd_keyfile) \
            if config.etcd_cafile and config.etcd_certfile and config.etcd_keyfile else None
        storage = EtcdStorage(list(config.etcd_servers), tls=tls)
        await storage.connect()
        return storage

    # --- lifespan ----------------------------------------------------------------------------------------
    async def startup(self) -> None:
        self._collections.clear()  # Targets hold the handles of one Registry: this start makes a new one
        metrics = Metrics()
        storage = InstrumentedStorage(await self._storage_factory(), metrics)
        registry = Registry(storage, self.config.etcd_prefix)
        namespaces = NamespaceLifecycle(registry.handle("namespaces"))
        allocators = ServiceAllocators(storage, self.config.etcd_prefix,
                                       service_cidr=self.config.service_cluster_ip_range,
                                       node_port_range=self.config.service_node_port_range)
        self.state = ServerState(config=self.config, registry=registry, metrics=metrics, schemas=load_schemas(),
                                 namespaces=namespaces, allocators=allocators)
        await self._ensure_system_namespaces()
        await ensure_kubernetes_service(self.state)
        await namespaces.start()
        log.info("apiserver ready: etcd %s prefix %s", ",".join(self.config.etcd_servers), self.config.etcd_prefix)

    async def shutdown(self) -> None:
        if self.state is not None:
            await self.state.namespaces.stop()
            await self.state.registry.stop()
            await self.state.registry.storage.close()

    async def end_watches(self) -> None:
        """Stop the watch caches so every open watch stream ends (used when shutting down)."""
        if self.state is not None:
            await self.state.namespaces.stop()
            await self.state.registry.stop()

    async def _ensure_system_namespaces(self) -> None:
        from apiserver.handlers.create import WriteOptions, create_object

        assert self.state is not None
        handle = self.state.registry.handle("namespaces")
        for name in SYSTEM_NAMESPACES:
            if await handle.storage.get(handle.key(None, name)) is None:
                try:
                    await create_object(self.state, handle, None,
                                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                                        WriteOptions(manager="kube-apiserver"))
                except ApiError as exc:
                    if exc.reason != "AlreadyExists":  # another API server got there first
                        raise

    # --- ASGI --------------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self._dispatch(request)
        await response(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Only pods/exec is served over websockets: bridged to the pod's node agent."""
        from apiserver.handlers import nodeproxy

        state = self.state
        path = scope["path"].rstrip("/")
        try:
            target = self._resolve(state, path) if state is not None else None
            if (state is None or target is None or target.handle.info.plural != "pods"
                    or target.subresource != "exec" or not target.name):
                raise ApiError(404, "the server could not find the requested resource", "NotFound")
        except ApiError as error:
            await send({"type": "websocket.close", "code": 1008, "reason": error.message[:120]})
            return
        await nodeproxy.proxy_exec(state, scope, receive, send, target.namespace or "", target.name)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        try:
            await self.startup()
        except Exception as exc:
            log.exception("apiserver failed to start")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        try:
            async with asyncio.TaskGroup() as background:
                tasks = self._start_background(background)
                await send({"type": "lifespan.startup.complete"})
                while (await receive())["type"] != "lifespan.shutdown":
                    pass
                for task in tasks:
                    task.cancel()
        finally:
            try:
                await self.shutdown()
            finally:
                await send({"type": "lifespan.shutdown.complete"})

    def _start_background(self, group: asyncio.TaskGroup) -> list[asyncio.Task[None]]:
        """The server's long-running duties; the lifespan's task group owns them until shutdown."""
        assert self.state is not None
        tasks: list[asyncio.Task[None]] = []
        interval = self.config.etcd_compaction_interval
        if interval > 0:
            # As kube-apiserver: every interval, compact to the revision seen one interval earlier.
            compactor = Compactor(self.state.registry.storage, interval=interval, retention=interval)
            tasks.append(group.create_task(compactor.run(), name="etcd-compactor"))
        if self.config.endpoint_lease_duration > 0:  # the `kubernetes` endpoints list only live API servers
            reconciler = EndpointLeaseReconciler(self.state)
            tasks.append(group.create_task(reconciler.run(), name="kubernetes-endpoints"))
        return tasks

    async def _dispatch(self, request: Request) -> Response:
        state = self.state
        if state is None:
            return json_response(status_for(503, "the API server is starting"), 503)
        path: str = request.scope["path"]  # not request.url: building the URL object costs more than the route
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")  # clients such as the `kubernetes` package ask for /api/ and /version/
        started = time.perf_counter()
        verb, resource, subresource, group, code = request.method.lower(), "", "", "", 500
        target: Target | None = None
        try:
            try:
                fixed = self._fixed.get(path)
                if fixed is not None:
                    response = await fixed(state, request)
                elif path.startswith("/openapi/v3/"):
                    response = _json_bytes(openapi.document_for(path[len("/openapi/v3/"):]))
                elif path == metrics_api.PREFIX or path.startswith(metrics_api.PREFIX + "/"):
                    response = await metrics_api.serve(state, request, path)  # kubectl top; not stored
                else:
                    target = self._resolve(state, path)
                    if target is None:
                        response = self._group_discovery(path)
                    else:
                        resource, subresource = target.verb_resource
                        group = target.handle.info.group
                        try:
                            verb, response = await serve(state, request, target)
                        except StorageError as exc:
                            status = storage_error_status(exc, target.handle, target.name or "")
                            if status is None:
                                raise
                            raise status from None
            except StorageError as exc:  # outside a resource context (health, discovery …)
                with storage_errors(state.registry.handle("namespaces"), ""):
                    raise exc
                raise
        except ApiError as exc:
            response = json_response(exc.status(), exc.code)
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.url)
            response = json_response(status_for(500, "an internal error occurred in the API server; see its log",
                                                 "InternalError"), 500)
        code = response.status_code
        if resource:
            state.metrics.observe_request(verb, group, resource, subresource, code, time.perf_counter() - started)
        return response

    def _resolve(self, state: ServerState, path: str) -> Target | None:
        known = self._collections.get(path)
        if known is not None:
            return known
        target = self._resolve_path(state, path)
        if target is not None and target.name is None:
            # Collection paths repeat (every create and list of a kind in a namespace); objects' do far less.
            if len(self._collections) >= _COLLECTION_TARGETS:
                self._collections.clear()
            self._collections[path] = target
        return target

    def _resolve_path(self, state: ServerState, path: str) -> Target | None:
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            if parts[1] != "v1":
                raise ApiError(404, "the server could not find the requested resource", "NotFound")
            if len(parts) == 2:
                return None
            return resolve(state, "", "v1", parts[2:], path)
        if parts[0] == "apis" and len(parts) >= 2:
            if len(parts) <= 3:
                return None
            return resolve(state, parts[1], parts[2], parts[3:], path)
        raise ApiError(404, "the server could not find the requested resource", "NotFound")

    def _group_discovery(self, path: str) -> Response:
        parts = path.strip("/").split("/")
        if parts[0] == "api":
            return json_response(discovery.resource_list("", "v1"))
        if len(parts) == 2:
            group = discovery.api_group(parts[1])
            if group is not None:
                return json_response(group)
        elif parts[2] in discovery.served_versions(parts[1]):
            return json_response(discovery.resource_list(parts[1], parts[2]))
        raise ApiError(404, "the server could not find the requested resource", "NotFound")

    # --- fixed endpoints needing the app -----------------------------------------------------------------
    async def _api(self, state: ServerState, request: Request) -> Response:
        host = request.headers.get("host") or f"{self.config.bind_address}:{self.config.port}"
        return json_response(discovery.api_versions(host))

    async def _apis(self, state: ServerState, request: Request) -> Response:
        return json_response(discovery.api_group_list())

    async def _openapi_index(self, state: ServerState, request: Request) -> Response:
        return _json_bytes(openapi.index_document())

    async def _openapi_v2(self, state: ServerState, request: Request) -> Response:
        raise ApiError(404, "the server could not find the requested resource (openapi/v2 is not served; use "
                            "/openapi/v3)", "NotFound")


def create_app(config: Config, **kwargs: Any) -> ApiServerApp:
    return ApiServerApp(config, **kwargs)
