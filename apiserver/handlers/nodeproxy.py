"""pods/log and pods/exec, proxied to the node agent's server (kubelet/server.py: /containerLogs, /exec).

The pod's node gives the address (status.addresses InternalIP) and port (status.daemonEndpoints.kubeletEndpoint);
logs stream back as text/plain, exec is a websocket bridged frame by frame (the v4/v5.channel.k8s.io framing is
the kubelet's; this module only relays it).

Scheme: plain http unless the API server is configured as a TLS client of the node agents
(`--kubelet-certificate-authority` to verify their serving certs, `--kubelet-client-certificate/-key` to present
its own, as Kubernetes' flags); then every node connection (logs, exec, metrics) uses https/wss. The choice is the
API server's, not per node, as in Kubernetes: a cluster serves its node agents either all over TLS or none.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import httpx
import orjson
import websockets
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from aiokube.api.errors import ApiError, bad_request
from aiokube.api.types import Obj
from apiserver.handlers.read import get_object
from apiserver.handlers.state import ServerState

log = logging.getLogger(__name__)

LOG_PARAMS = ("follow", "tailLines", "timestamps", "previous", "sinceSeconds", "sinceTime", "limitBytes")
EXEC_PARAMS = ("command", "stdin", "stdout", "stderr", "tty")


@dataclass(frozen=True)
class KubeletClientTLS:
    """How the API server reaches node agents over TLS (the --kubelet-* flags)."""

    certificate_authority: str | None = None  # verify the node's serving cert; None: the system CAs
    client_certificate: str | None = None
    client_key: str | None = None

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.certificate_authority)
        if self.client_certificate:
            context.load_cert_chain(self.client_certificate, self.client_key)
        return context


def kubelet_tls(state: ServerState) -> KubeletClientTLS | None:
    """The TLS client settings from the server's config (fields named after the flags); None means plain http."""
    config = state.config
    ca = config.kubelet_certificate_authority
    cert = config.kubelet_client_certificate
    key = config.kubelet_client_key
    if not (ca or cert):
        return None
    return _tls_settings(ca, cert, key)


@functools.lru_cache(maxsize=4)
def _tls_settings(ca: str | None, cert: str | None, key: str | None) -> KubeletClientTLS:
    # One object (and one loaded SSLContext) per distinct configuration, not one per request.
    return KubeletClientTLS(ca, cert, key)


def node_endpoint(node: Obj, tls: KubeletClientTLS | None) -> str | None:
    """`scheme://address:port` of a node's agent from its status, or None when it reports none."""
    status = node.get("status", {})
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses", [])}
    address = addresses.get("InternalIP") or addresses.get("ExternalIP") or addresses.get("Hostname")
    port = status.get("daemonEndpoints", {}).get("kubeletEndpoint", {}).get("Port")
    if not address or not port:
        return None
    host = f"[{address}]" if ":" in address else address
    return f"{'https' if tls else 'http'}://{host}:{port}"


def _container_of(pod: Obj, container: str | None) -> str:
    names = [c.get("name", "") for c in pod.get("spec", {}).get("containers", [])]
    if container:
        if container not in names + [c.get("name", "") for c in pod.get("spec", {}).get("initContainers", [])]:
            raise bad_request(f'container {container} is not valid for pod {pod["metadata"]["name"]}')
        return container
    if len(names) == 1:
        return names[0]
    raise bad_request(f'a container name must be specified for pod {pod["metadata"]["name"]}, choose one of: '
                      f'[{" ".join(names)}]')


async def node_base_url(state: ServerState, pod: Obj) -> str:
    node_name = pod.get("spec", {}).get("nodeName")
    if not node_name:
        raise bad_request(f'pod {pod["metadata"]["name"]} does not have a host assigned')
    node = await get_object(state.registry.handle("nodes"), None, node_name)
    base = node_endpoint(node, kubelet_tls(state))
    if base is None:
        raise ApiError(503, f"node {node_name} does not report a kubelet address", "ServiceUnavailable")
    return base


async def proxy_log(state: ServerState, namespace: str, name: str, query: Mapping[str, str]) -> Response:
    pod = await get_object(state.registry.handle("pods"), namespace, name)
    container = _container_of(pod, query.get("container"))
    base = await node_base_url(state, pod)
    params = {k: query[k] for k in LOG_PARAMS if k in query}
    url = f"{base}/containerLogs/{quote(namespace)}/{quote(name)}/{quote(container)}"
    tls = kubelet_tls(state)
    client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None), verify=tls.ssl_context if tls else True)
    try:
        upstream = await client.send(client.build_request("GET", url, params=params), stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        raise ApiError(503, f"cannot reach the node agent of pod {name}: {exc}", "ServiceUnavailable") from None
    if upstream.status_code != 200:
        body = await upstream.aread()
        await client.aclose()
        raise ApiError(upstream.status_code if upstream.status_code < 500 else 500, _message(body))

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()
            await client.aclose()

    return StreamingResponse(relay(), media_type="text/plain")


def _message(body: bytes) -> str:
    """The kubelet answers errors as FastAPI {"detail": …}; keep just the text for the Status."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace").strip()
    return str(data.get("detail") or data.get("message") or data) if isinstance(data, dict) else str(data)


async def _deny(scope: Scope, send: Send, error: ApiError) -> None:
    """Refuse a websocket upgrade with a Status body when the server supports it, else close."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = orjson.dumps(error.status())
        await send({"type": "websocket.http.response.start", "status": error.code,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": error.message[:120]})


async def proxy_exec(state: ServerState, scope: Scope, receive: Receive, send: Send, namespace: str,
                     name: str) -> None:
    websocket = WebSocket(scope, receive, send)
    query = websocket.query_params
    try:
        pod = await get_object(state.registry.handle("pods"), namespace, name)
        container = _container_of(pod, query.get("container"))
        base = await node_base_url(state, pod)
    except ApiError as error:
        await _deny(scope, send, error)
        return
    params = [(k, v) for k, v in query.multi_items() if k in EXEC_PARAMS]
    tls = kubelet_tls(state)
    url = (f"{base.replace('http', 'ws', 1)}/exec/{quote(namespace)}/{quote(name)}/{quote(container)}"
           f"?{urlencode(params)}")
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    try:
        upstream = await websockets.connect(url, subprotocols=offered or None,  # type: ignore[arg-type]
                                            max_size=None, open_timeout=10,
                                            ssl=tls.ssl_context if tls else None)
    except (OSError, websockets.WebSocketException, TimeoutError) as exc:
        await _deny(scope, send, ApiError(503, f"cannot reach the node agent of pod {name}: {exc}",
                                          "ServiceUnavailable"))
        return
    await websocket.accept(subprotocol=upstream.subprotocol)

    async def client_to_node() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes") if message.get("bytes") is not None else message.get("text")
                if data is not None:
                    await upstream.send(data)

    async def node_to_client() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for data in upstream:
                if isinstance(data, bytes):
                    await websocket.send_bytes(data)
                else:
                    await websocket.send_text(data)

    tasks = [asyncio.create_task(client_to_node()), asyncio.create_task(node_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await upstream.close()
        with contextlib.suppress(RuntimeError):
            await websocket.close()


def exec_over_plain_http() -> ApiError:
    return ApiError(400, "pods/exec needs a websocket upgrade (subprotocol v5.channel.k8s.io or "
                         "v4.channel.k8s.io); SPDY is not supported", "BadRequest")
