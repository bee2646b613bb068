"""pods/log and pods/exec are relayed to the pod's node agent (here a stand-in serving the kubelet's routes,
so these tests need no containerd; the node agent's own tests cover the real server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tests.support.etcd import free_port

pytestmark = pytest.mark.etcd

PODS = "/api/v1/namespaces/default/pods"


async def container_logs(request: Request) -> PlainTextResponse:
    p = request.path_params
    return PlainTextResponse(f"log of {p['ns']}/{p['pod']}/{p['c']} tail={request.query_params.get('tailLines')}\n")


async def exec_ws(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="v5.channel.k8s.io")
    command = websocket.query_params.getlist("command")
    await websocket.send_bytes(b"\x01" + " ".join(command).encode())
    data = await websocket.receive_bytes()  # stdin frame, echoed back on stdout
    await websocket.send_bytes(b"\x01" + data[1:])
    await websocket.send_bytes(b'\x03{"metadata":{},"status":"Success"}')
    await websocket.close()


@pytest.fixture
def node_agent() -> Iterator[int]:
    app = Starlette(routes=[Route("/containerLogs/{ns}/{pod}/{c}", container_logs),
                            WebSocketRoute("/exec/{ns}/{pod}/{c}", exec_ws)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(10)


async def _bound_pod(api: httpx.AsyncClient, port: int, containers: int = 1) -> None:
    node = {"metadata": {"name": "n1"}, "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                                                   "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}
    created = (await api.post("/api/v1/nodes", json=node)).json()
    created["status"] = node["status"]
    await api.put("/api/v1/nodes/n1/status", json=created)
    spec = {"nodeName": "n1", "containers": [{"name": f"c{i}", "image": "busybox"} for i in range(containers)]}
    assert (await api.post(PODS, json={"metadata": {"name": "p"}, "spec": spec})).status_code == 201


async def test_logs_are_relayed(api: httpx.AsyncClient, node_agent: int) -> None:
    await _bound_pod(api, node_agent)
    response = await api.get(f"{PODS}/p/log", params={"tailLines": "5"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert response.text == "log of default/p/c0 tail=5\n"
    bad = await api.get(f"{PODS}/p/log", params={"container": "nope"})
    assert bad.status_code == 400


async def test_logs_need_a_container_choice_and_a_node(api: httpx.AsyncClient, node_agent: int) -> None:
    await _bound_pod(api, node_agent, containers=2)
    ambiguous = await api.get(f"{PODS}/p/log")
    assert ambiguous.status_code == 400 and "choose one of: [c0 c1]" in ambiguous.json()["message"]
    await api.post(PODS, json={"metadata": {"name": "pending"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    pending = await api.get(f"{PODS}/pending/log")
    assert pending.status_code == 400 and "does not have a host assigned" in pending.json()["message"]


async def test_exec_websocket_is_bridged(api: httpx.AsyncClient, apiserver: str, node_agent: int) -> None:
    await _bound_pod(api, node_agent)
    url = apiserver.replace("http://", "ws://") + f"{PODS}/p/exec?command=echo&command=hi&stdin=true&stdout=true"
    async with websockets.connect(url, subprotocols=["v5.channel.k8s.io", "v4.channel.k8s.io"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "v5.channel.k8s.io"
        assert await ws.recv() == b"\x01echo hi"
        await ws.send(b"\x00typed")
        assert await ws.recv() == b"\x01typed"
        assert (await ws.recv()).startswith(b'\x03{"metadata":{},"status":"Success"}')
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(url.replace("/p/exec", "/nope/exec")):
            pass
