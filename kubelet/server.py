"""The node's HTTP server (the kubelet's :10250): container logs, exec over websocket, stats, health.

Routes, as the kubelet serves them (the API server proxies pods/log and pods/exec here):
  GET /healthz
  GET /pods                                          pods bound to this node (PodList)
  GET /containerLogs/{namespace}/{pod}/{container}   ?follow&tailLines&timestamps&previous&sinceSeconds&…
  WS  /exec/{namespace}/{pod}/{container}            ?command=…&stdin&stdout&stderr&tty
                                                     subprotocols v5/v4.channel.k8s.io
  GET /stats/summary                                 node and per-pod cpu/memory (from CRI stats)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from typing import Protocol

import websockets
from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.websockets import WebSocketDisconnect

from aiokube.api.types import Obj
from kubelet import labels as L
from kubelet.cri import CriError, RuntimeClient
from kubelet.logs import LogOptions, log_exists, read_log
from kubelet.node_status import meminfo
from kubelet.runtime_state import ContainerRecord, list_runtime_pods
from kubelet.spdy import SpdyConnection

log = logging.getLogger(__name__)

SUBPROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


class NodeView(Protocol):
    runtime: RuntimeClient
    node_ip: str

    @property
    def node_name(self) -> str: ...

    def find_pod(self, namespace: str, name: str) -> Obj | None: ...

    def list_pods(self) -> list[Obj]: ...


async def _containers(node: NodeView, namespace: str, pod_name: str, container: str) -> list[ContainerRecord]:
    pod = node.find_pod(namespace, pod_name)
    if pod is None:
        raise HTTPException(404, f'pods "{pod_name}" not found')
    uid = pod["metadata"]["uid"]
    spec = pod.get("spec", {})
    names = [c["name"] for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]
    if container not in names:
        raise HTTPException(400, f"container {container} is not valid for pod {pod_name}")
    rt = (await list_runtime_pods(node.runtime, node.node_name, uid=uid)).get(uid)
    history = rt.history(container) if rt else []
    if not history:
        raise HTTPException(400, f'container "{container}" in pod "{pod_name}" is waiting to start: '
                                 "ContainerCreating")
    return history


def _log_target(pod: Obj, container: str, history: list[ContainerRecord], previous: bool) -> ContainerRecord | None:
    """Which container instance's log to read, as the kubelet decides it from the reported status: `previous`
    is lastState.terminated; otherwise the running/terminated one, or lastState while waiting to restart."""
    status = pod.get("status", {})
    entry = next((s for s in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
                  if s.get("name") == container), None)
    by_id = {f"containerd://{c.id}": c for c in history}
    if entry is not None:
        state, last = entry.get("state") or {}, (entry.get("lastState") or {}).get("terminated") or {}
        if previous:
            return by_id.get(last.get("containerID", ""))
        for key in ("running", "terminated"):
            if key in state and state[key].get("containerID", entry.get("containerID")) in by_id:
                return by_id[state[key].get("containerID", entry.get("containerID"))]
        if last.get("containerID") in by_id:
            return by_id[last["containerID"]]
    # No status yet: newest instance, or the one before it for `previous`.
    if previous:
        return next(iter(history[1:]), None)
    return history[0]


def _status_frame(exit_code: int, message: str = "") -> bytes:
    if exit_code == 0:
        status: Obj = {"metadata": {}, "status": "Success"}
    else:
        status = {"metadata": {}, "status": "Failure",
                  "message": message or f"command terminated with non-zero exit code: {exit_code}",
                  "reason": "NonZeroExitCode",
                  "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}}
    return bytes([STATUS]) + json.dumps(status).encode()


def make_app(node: NodeView) -> FastAPI:
    app = FastAPI(title="aiokube node agent", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok"

    @app.get("/pods")
    async def pods() -> JSONResponse:
        return JSONResponse({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": node.list_pods()})

    @app.get("/containerLogs/{namespace}/{pod_name}/{container}")
    async def container_logs(namespace: str, pod_name: str, container: str, request: Request) -> StreamingResponse:
        q = request.query_params
        history = await _containers(node, namespace, pod_name, container)
        previous = q.get("previous") in ("true", "1")
        target = _log_target(node.find_pod(namespace, pod_name) or {}, container, history, previous)
        if target is None:
            raise HTTPException(400, f'previous terminated container "{container}" in pod "{pod_name}" not found')
        since: dt.datetime | None = None
        if q.get("sinceSeconds"):
            since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(q["sinceSeconds"]))
        elif q.get("sinceTime"):
            since = dt.datetime.fromisoformat(q["sinceTime"].replace("Z", "+00:00"))
        options = LogOptions(
            follow=q.get("follow") in ("true", "1") and not previous,
            tail_lines=int(q["tailLines"]) if q.get("tailLines") else None,
            since=since, timestamps=q.get("timestamps") in ("true", "1"),
            limit_bytes=int(q["limitBytes"]) if q.get("limitBytes") else None,
        )
        if not log_exists(target.log_path):
            return StreamingResponse(iter([b""]), media_type="text/plain")

        async def still_running() -> bool:
            try:
                st = await node.runtime.container_status(target.id)
            except CriError:
                return False
            return bool(st.state in (0, 1))  # CONTAINER_CREATED or CONTAINER_RUNNING

        return StreamingResponse(read_log(target.log_path, options, still_running), media_type="text/plain")

    @app.websocket("/exec/{namespace}/{pod_name}/{container}")
    async def exec_ws(websocket: WebSocket, namespace: str, pod_name: str, container: str) -> None:
        await exec_session(node, websocket, namespace, pod_name, container)

    @app.get("/stats/summary")
    async def stats_summary() -> JSONResponse:
        return JSONResponse(await summary(node))

    return app


async def exec_session(node: NodeView, websocket: WebSocket, namespace: str, pod_name: str,
                       container: str) -> None:
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    protocol = next((p for p in SUBPROTOCOLS if p in offered), None)
    if protocol is None:
        await websocket.close(code=1002, reason="no supported subprotocol (v5/v4.channel.k8s.io)")
        return
    await websocket.accept(subprotocol=protocol)
    q = websocket.query_params
    command = q.getlist("command")
    try:
        history = await _containers(node, namespace, pod_name, container)
    except HTTPException as e:
        await websocket.send_bytes(bytes([STDERR]) + f"{e.detail}\n".encode())
        await websocket.send_bytes(_status_frame(1, str(e.detail)))
        await websocket.close()
        return
    target = history[0]
    stdin = q.get("stdin") in ("true", "1")
    tty = q.get("tty") in ("true", "1")
    try:
        if stdin or tty:
            await _exec_streaming(node, websocket, target.id, command, stdin=stdin, tty=tty)
        else:
            response = await node.runtime.exec_sync(target.id, command, 0)
            if response.stdout:
                await websocket.send_bytes(bytes([STDOUT]) + response.stdout)
            if response.stderr:
                await websocket.send_bytes(bytes([STDERR]) + response.stderr)
            await websocket.send_bytes(_status_frame(response.exit_code))
    except CriError as e:
        await websocket.send_bytes(bytes([STDERR]) + f"{e.details}\n".encode())
        await websocket.send_bytes(_status_frame(126, e.details))
    except WebSocketDisconnect:
        return
    await websocket.close()


async def _exec_streaming(node: NodeView, websocket: WebSocket, container_id: str, command: list[str], *,
                          stdin: bool, tty: bool) -> None:
    if stdin and not tty:
        # Over SPDY so that the client's stdin close reaches the command (kubelet/spdy.py says why).
        url = await node.runtime.exec_url(container_id, command, stdin=True, tty=False)
        await _exec_spdy(websocket, url)
        return
    await _exec_websocket(node, websocket, container_id, command, stdin=stdin, tty=tty)


async def _exec_spdy(websocket: WebSocket, url: str) -> None:
    """Relay a non-tty exec with stdin: websocket channels <-> SPDY streams (stdin close -> FIN on stdin)."""
    connection = await SpdyConnection.connect(url, "v4.channel.k8s.io")
    try:
        channel_of: dict[int, int] = {}
        for stream_type, channel in (("error", STATUS), ("stdin", STDIN), ("stdout", STDOUT), ("stderr", STDERR)):
            channel_of[await connection.open_stream({"streamType": stream_type})] = channel
        stdin_stream = next(sid for sid, channel in channel_of.items() if channel == STDIN)

        async def client_to_runtime() -> None:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    await connection.close()
                    return
                data = message.get("bytes") or (message.get("text") or "").encode()
                if data[:1] == bytes([STDIN]) and len(data) > 1:
                    await connection.send(stdin_stream, data[1:])
                elif data[:2] == bytes([CLOSE, STDIN]):  # v5: the client's stdin reached its end
                    await connection.send(stdin_stream, b"", fin=True)

        forward = asyncio.create_task(client_to_runtime())
        try:
            async for frame in connection.frames():
                out = channel_of.get(frame.stream_id)
                if out is not None and out != STDIN and frame.data:
                    await websocket.send_bytes(bytes([out]) + frame.data)
        finally:
            forward.cancel()
    finally:
        await connection.close()


async def _exec_websocket(node: NodeView, websocket: WebSocket, container_id: str, command: list[str], *,
                          stdin: bool, tty: bool) -> None:
    """Relay between the client and containerd's streaming server (websocket, v4.channel.k8s.io).

    The runtime speaks v4 only: a v5 client's stdin-close (channel 255) cannot be forwarded; only tty sessions
    take this path (they end when the user leaves the shell, not at stdin EOF).
    """
    url = await node.runtime.exec_url(container_id, command, stdin=stdin, tty=tty)
    ws_url = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    async with websockets.connect(ws_url, subprotocols=[websockets.Subprotocol("v4.channel.k8s.io")],
                                  max_size=None) as upstream:

        async def client_to_runtime() -> None:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    await upstream.close()
                    return
                data = message.get("bytes") or (message.get("text") or "").encode()
                if data and data[0] in (STDIN, RESIZE):
                    await upstream.send(data)

        async def runtime_to_client() -> None:
            async for message in upstream:
                data = message if isinstance(message, bytes) else message.encode()
                await websocket.send_bytes(data)

        forward = asyncio.create_task(client_to_runtime())
        try:
            await runtime_to_client()
        finally:
            forward.cancel()


def _cpu_mem(stats: object) -> tuple[Obj, Obj]:
    cpu = getattr(stats, "cpu")  # noqa: B009 - protobuf message
    mem = getattr(stats, "memory")  # noqa: B009
    ts = dt.datetime.fromtimestamp((cpu.timestamp or time.time_ns()) / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ({"time": ts, "usageNanoCores": cpu.usage_nano_cores.value,
             "usageCoreNanoSeconds": cpu.usage_core_nano_seconds.value},
            {"time": ts, "workingSetBytes": mem.working_set_bytes.value, "usageBytes": mem.usage_bytes.value,
             "rssBytes": mem.rss_bytes.value, "pageFaults": mem.page_faults.value,
             "majorPageFaults": mem.major_page_faults.value})


async def summary(node: NodeView) -> Obj:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    mem = meminfo()
    pods: dict[str, Obj] = {}
    for stats in await node.runtime.list_container_stats():
        labels = stats.attributes.labels
        if labels.get(L.MANAGED_BY) != node.node_name:
            continue
        uid = labels.get(L.POD_UID, "")
        cpu, memory = _cpu_mem(stats)
        pod = pods.setdefault(uid, {
            "podRef": {"name": labels.get(L.POD_NAME, ""), "namespace": labels.get(L.POD_NAMESPACE, ""),
                       "uid": uid},
            "startTime": now, "containers": [],
            "cpu": {"time": now, "usageNanoCores": 0, "usageCoreNanoSeconds": 0},
            "memory": {"time": now, "workingSetBytes": 0, "usageBytes": 0}})
        pod["containers"].append({"name": labels.get(L.CONTAINER_NAME, ""), "startTime": now, "cpu": cpu,
                                  "memory": memory})
        for key in ("usageNanoCores", "usageCoreNanoSeconds"):
            pod["cpu"][key] += cpu[key]
        for key in ("workingSetBytes", "usageBytes"):
            pod["memory"][key] += memory[key]
    total, available = mem.get("MemTotal", 0), mem.get("MemAvailable", 0)
    return {
        "node": {"nodeName": node.node_name, "startTime": now,
                 "memory": {"time": now, "availableBytes": available, "usageBytes": total - available,
                            "workingSetBytes": total - available}},
        "pods": list(pods.values()),
    }
