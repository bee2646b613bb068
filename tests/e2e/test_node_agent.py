"""The node agent process (`python -m kubelet`) against the real API server on real etcd and a private
containerd: registration + lease, a pod bound to the node runs and answers on its IP, logs and exec through
the node server, deletion, and adoption across an agent restart."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import websockets

from aiokube.api.errors import ApiError
from aiokube.client import ApiClient
from tests.support.apiserver import running_apiserver
from tests.support.containerd import PrivateContainerd, containerd_fixture
from tests.support.etcd import free_port
from tests.support.processes import terminate

pytestmark = [pytest.mark.containerd, pytest.mark.etcd, pytest.mark.timeout(180)]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def containerd() -> Iterator[PrivateContainerd]:
    yield from containerd_fixture()


@dataclass
class Agent:
    argv: list[str]
    log_path: str
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # handed to the child
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=log, cwd=REPO, start_new_session=True)
        log.close()

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, 15)

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()[-4000:]


@dataclass
class Node:
    name: str
    api: ApiClient
    agent: Agent
    server: str  # the agent's HTTP server


def write_kubeconfig(path: str, url: str) -> str:
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "t",
                   "clusters": [{"name": "t", "cluster": {"server": url}}],
                   "users": [{"name": "t", "user": {}}],
                   "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}]}, f)
    return path


@pytest.fixture
async def node(containerd: PrivateContainerd, etcd_url: str, etcd_prefix: str,
               tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    root = str(tmp_path_factory.mktemp("agent"))
    name = f"node-{uuid.uuid4().hex[:6]}"
    port = free_port()
    with running_apiserver(etcd_url, etcd_prefix) as url:
        kubeconfig = write_kubeconfig(os.path.join(root, "kubeconfig"), url)
        agent = Agent([sys.executable, "-m", "kubelet", "--kubeconfig", kubeconfig, "--node-name", name,
                       "--containerd-socket", containerd.socket, "--root-dir", os.path.join(root, "kubelet"),
                       "--node-ip", "127.0.0.1", "--pod-cidr", containerd.config.pod_cidr,
                       "--cgroup-prefix", containerd.config.cgroup_prefix, "--server-port", str(port),
                       "--server-address", "127.0.0.1", "--backoff-base", "1", "--pleg-period", "0.3",
                       "--resync-period", "2", "--lease-interval", "1", "--status-interval", "1"],
                      os.path.join(root, "agent.log"))
        async with ApiClient(url) as api:
            agent.start()
            try:
                yield Node(name, api, agent, f"http://127.0.0.1:{port}")
            finally:
                # Delete what the test left so the agent stops and removes it, then stop the agent.
                for p in (await api.list("pods", namespace="default"))["items"]:
                    if p["spec"].get("nodeName") == name:
                        await api.delete("pods", p["metadata"]["name"], namespace="default",
                                         grace_period_seconds=0)
                await asyncio.sleep(1.0)
                agent.stop()
                containerd.remove_all_pods()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30, what: str = "",
                     node: Node | None = None) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if node and node.agent.process and node.agent.process.poll() is not None:
            raise AssertionError(f"the agent exited:\n{node.agent.log()}")
        try:
            if await check():
                return
        except (ApiError, httpx.HTTPError, KeyError):
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out: {what}\n{node.agent.log() if node else ''}")


def web_pod(name: str, node_name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node_name, "terminationGracePeriodSeconds": 5, "containers": [{
                "name": "web", "image": "localhost/busybox:latest", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "mkdir -p /www; echo hello-$(hostname) > /www/index.html; "
                                        "echo started; exec httpd -f -p 8080 -h /www"],
                "ports": [{"containerPort": 8080}]}]}}


async def test_node_registers_with_status_and_lease(node: Node) -> None:
    async def ready() -> bool:
        n = await node.api.get("nodes", node.name)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))

    await eventually(ready, what="node Ready", node=node)
    n = await node.api.get("nodes", node.name)
    status = n["status"]
    print(json.dumps(n, indent=1))  # shown by pytest only when an assertion below fails
    assert status["nodeInfo"]["kubeletVersion"] == "v1.32.0"
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert int(status["capacity"]["cpu"]) >= 1 and status["capacity"]["pods"] == "110"
    assert status["allocatable"]["memory"].endswith("Ki")
    assert {c["type"] for c in status["conditions"]} == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert any("localhost/busybox:latest" in i["names"] for i in status["images"])
    assert n["spec"]["podCIDR"]
    lease = await node.api.get("leases", node.name, namespace="kube-node-lease")
    first_renew = lease["spec"]["renewTime"]
    assert lease["spec"]["holderIdentity"] == node.name

    async def renewed() -> bool:
        return (await node.api.get("leases", node.name, namespace="kube-node-lease"))["spec"]["renewTime"] \
            != first_renew

    await eventually(renewed, within=15, what="lease renewed", node=node)


async def test_pod_runs_serves_logs_exec_and_is_deleted(node: Node) -> None:
    await node.api.create("pods", web_pod("web", node.name), namespace="default")

    async def running() -> bool:
        p = await node.api.get("pods", "web", namespace="default")
        return p["status"].get("phase") == "Running" and p["status"]["containerStatuses"][0]["ready"]

    await eventually(running, what="pod Running", node=node)
    pod = await node.api.get("pods", "web", namespace="default")
    ip = pod["status"]["podIP"]
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://{ip}:8080/")).text == "hello-web\n"
        logs = await http.get(f"{node.server}/containerLogs/default/web/web")
        assert logs.text == "started\n"

    async with websockets.connect(
        f"{node.server.replace('http', 'ws')}/exec/default/web/web?command=sh&command=-c"
        "&command=echo%20out%3B%20echo%20err%20%3E%262%3B%20exit%203&stdout=true&stderr=true",
        subprotocols=[websockets.Subprotocol("v5.channel.k8s.io")],
    ) as ws:
        assert ws.subprotocol == "v5.channel.k8s.io"
        frames = [f async for f in ws]
    by_channel: dict[int, bytes] = {}
    for frame in frames:
        assert isinstance(frame, bytes)
        by_channel[frame[0]] = by_channel.get(frame[0], b"") + frame[1:]
    assert by_channel[1] == b"out\n" and by_channel[2] == b"err\n"
    status = json.loads(by_channel[3])
    assert status["reason"] == "NonZeroExitCode" and status["details"]["causes"][0]["message"] == "3"

    await node.api.delete("pods", "web", namespace="default")

    async def gone() -> bool:
        try:
            await node.api.get("pods", "web", namespace="default")
        except ApiError as e:
            return e.code == 404
        return False

    await eventually(gone, within=20, what="pod object removed after graceful stop", node=node)


async def test_agent_restart_leaves_containers_untouched(node: Node) -> None:
    await node.api.create("pods", web_pod("keep", node.name), namespace="default")

    async def running() -> bool:
        p = await node.api.get("pods", "keep", namespace="default")
        return p["status"].get("phase") == "Running"

    await eventually(running, what="pod Running", node=node)
    before = (await node.api.get("pods", "keep", namespace="default"))["status"]["containerStatuses"][0]
    node.agent.stop()
    assert node.agent.process is not None and node.agent.process.returncode == 0, "SIGTERM is a clean exit"
    node.agent.start()

    await asyncio.sleep(3)  # the new agent syncs and writes status if anything differs
    after = (await node.api.get("pods", "keep", namespace="default"))["status"]["containerStatuses"][0]
    assert after["containerID"] == before["containerID"]
    assert after["restartCount"] == 0 and "running" in after["state"]
    assert node.agent.process is not None and node.agent.process.poll() is None, node.agent.log()


async def test_missing_image_gives_err_image_pull(node: Node) -> None:
    body = web_pod("noimage", node.name)
    body["spec"]["containers"][0]["image"] = "localhost/not-there:1"

    async def image_error() -> bool:
        p = await node.api.get("pods", "noimage", namespace="default")
        waiting = p["status"]["containerStatuses"][0]["state"].get("waiting", {})
        return waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff")

    await node.api.create("pods", body, namespace="default")
    await eventually(image_error, what="ErrImagePull", node=node)


async def test_exec_with_stdin_stats_and_events(node: Node) -> None:
    await node.api.create("pods", web_pod("tools", node.name), namespace="default")

    async def running() -> bool:
        p = await node.api.get("pods", "tools", namespace="default")
        return p["status"].get("phase") == "Running"

    await eventually(running, what="pod Running", node=node)
    # stdin goes through containerd's streaming server (websocket, v4 channels) relayed by the agent.
    async with websockets.connect(
        f"{node.server.replace('http', 'ws')}/exec/default/tools/web?command=head&command=-n1"
        "&stdin=true&stdout=true&stderr=true",
        subprotocols=[websockets.Subprotocol("v4.channel.k8s.io")],
    ) as ws:
        await ws.send(b"\x00typed line\n")
        out = b""
        status = b""
        async for frame in ws:
            assert isinstance(frame, bytes)
            if frame[:1] == b"\x01":
                out += frame[1:]
            elif frame[:1] == b"\x03":
                status += frame[1:]
    assert out == b"typed line\n"
    assert json.loads(status)["status"] == "Success"

    async with httpx.AsyncClient() as http:
        summary = (await http.get(f"{node.server}/stats/summary")).json()
    assert summary["node"]["nodeName"] == node.name and summary["node"]["memory"]["availableBytes"] > 0
    pods = {p["podRef"]["name"]: p for p in summary["pods"]}
    assert pods["tools"]["containers"][0]["name"] == "web"
    assert pods["tools"]["memory"]["workingSetBytes"] > 0

    async def started_event() -> bool:
        events = (await node.api.list("events", namespace="default"))["items"]
        return any(e["reason"] == "Started" and e["involvedObject"]["name"] == "tools" and
                   e["source"]["component"] == "kubelet" for e in events)

    await eventually(started_event, within=10, what="Started event", node=node)
