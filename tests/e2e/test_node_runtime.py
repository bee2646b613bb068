"""The node agent's pod lifecycle on a real containerd (images, CNI, cgroups), with FakeApi in place of the
API server (see node_harness.py): Running with an IP, restarts, CrashLoopBackOff, init order, volumes and env,
graceful deletion, adoption after an agent restart, image errors, probes, orphan cleanup."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from kubelet import labels as L
from kubelet.cri import RuntimeClient
from tests.e2e.node_harness import FakeApi, Harness, b64, container_state, harness_config
from tests.support.containerd import PrivateContainerd, containerd_fixture

pytestmark = [pytest.mark.containerd, pytest.mark.timeout(120)]

BUSYBOX = "localhost/busybox:latest"


@pytest.fixture(scope="module")
def containerd() -> Iterator[PrivateContainerd]:
    yield from containerd_fixture()


@pytest.fixture
async def node(containerd: PrivateContainerd, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    name = f"n{uuid.uuid4().hex[:8]}"
    root = str(tmp_path_factory.mktemp("kubelet"))
    harness = Harness(harness_config(name, containerd.socket, root, cgroup_prefix=containerd.config.cgroup_prefix),
                      FakeApi())
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()
        await _remove_node_pods(containerd.socket, name, harness)


async def _remove_node_pods(socket: str, node_name: str, harness: Harness) -> None:
    from kubelet.runtime_state import list_runtime_pods

    async with RuntimeClient(socket) as runtime:
        from kubelet.pod_runtime import PodRuntimeManager

        manager = PodRuntimeManager(runtime, harness.kubelet.manager.node, harness.kubelet.volumes,
                                    harness.api, harness.kubelet.backoff, harness.kubelet.image_backoff)
        for rt in (await list_runtime_pods(runtime, node_name)).values():
            await manager.kill_pod(None, rt, 0)
            await manager.remove_pod(rt)


def pod(name: str, containers: list[dict], **spec: object) -> dict:
    for c in containers:
        c.setdefault("image", BUSYBOX)
        c.setdefault("imagePullPolicy", "IfNotPresent")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": containers, "terminationGracePeriodSeconds": 2, **spec}}


def running(h: Harness, name: str) -> bool:
    return h.status(name).get("phase") == "Running" and all(
        c.get("ready") for c in h.status(name).get("containerStatuses") or [{}])


async def test_pod_runs_with_ip_volumes_and_env(node: Harness) -> None:
    node.api.add("configmaps", {"metadata": {"name": "web-config", "namespace": "default"},
                                "data": {"greeting": "hello-from-configmap", "file.txt": "cm-file"}})
    node.api.add("secrets", {"metadata": {"name": "web-secret", "namespace": "default"},
                             "data": {"password": b64("s3cret")}})
    script = ("mkdir -p /www && echo $GREETING $PASSWORD $POD_NAME $MEM_LIMIT > /www/index.html && "
              "cat /etc/cm/file.txt /etc/secret/password >> /www/index.html && "
              "cat /etc/info/labels >> /www/index.html && exec httpd -f -p 8080 -h /www")
    spec = pod("web", [{
        "name": "web", "command": ["sh", "-c", script],
        "env": [
            {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "web-config", "key": "greeting"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "web-secret", "key": "password"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "MEM_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                     "divisor": "1Mi"}}},
        ],
        "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
        "volumeMounts": [{"name": "cm", "mountPath": "/etc/cm"}, {"name": "sec", "mountPath": "/etc/secret"},
                         {"name": "info", "mountPath": "/etc/info"}, {"name": "scratch", "mountPath": "/www"}],
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    }], volumes=[
        {"name": "cm", "configMap": {"name": "web-config"}},
        {"name": "sec", "secret": {"secretName": "web-secret"}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels",
                                                    "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "scratch", "emptyDir": {"medium": "Memory"}},
    ])
    spec["metadata"]["labels"] = {"app": "web"}
    created = node.api.add_pod(spec, node.config.node_name)
    await node.wait_for(lambda: running(node, "web"), what="web Running and ready")
    status = node.status("web")
    assert status["podIP"] and status["podIP"] != "127.0.0.1"
    assert status["hostIP"] == "127.0.0.1"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True", "ContainersReady": "True",
        "PodScheduled": "True"}
    web = container_state(status, "web")
    assert web["containerID"].startswith("containerd://") and web["restartCount"] == 0 and web["started"]
    async with httpx.AsyncClient() as http:
        body = (await http.get(f"http://{status['podIP']}:8080/")).text
    assert "hello-from-configmap s3cret web 64" in body
    assert "cm-file" in body and 's3cret' in body and 'app="web"' in body
    # Limits reach the pod's cgroup.
    uid = created["metadata"]["uid"]
    cgroup = f"/sys/fs/cgroup/memory/{node.config.cgroup_prefix}/pod{uid}"
    limits = [open(os.path.join(cgroup, d, "memory.limit_in_bytes")).read().strip()
              for d in os.listdir(cgroup) if os.path.isdir(os.path.join(cgroup, d))]
    assert str(64 * 1024 * 1024) in limits


async def test_killed_container_is_restarted(node: Harness) -> None:
    node.api.add_pod(pod("sleeper", [{"name": "main", "command": ["sleep", "3600"]}]), node.config.node_name)
    await node.wait_for(lambda: running(node, "sleeper"), what="sleeper Running")
    first = container_state(node.status("sleeper"), "main")["containerID"].removeprefix("containerd://")
    await node.runtime.stop_container(first, 0)  # SIGKILL from outside, like an OOM or a crash
    await node.wait_for(lambda: container_state(node.status("sleeper"), "main").get("restartCount") == 1
                        and "running" in container_state(node.status("sleeper"), "main")["state"],
                        what="restartCount 1 and running")
    main = container_state(node.status("sleeper"), "main")
    assert main["lastState"]["terminated"]["exitCode"] == 137
    assert main["containerID"] != f"containerd://{first}"


async def test_crashing_container_reaches_crash_loop_back_off(node: Harness) -> None:
    node.api.add_pod(pod("crash", [{"name": "main", "command": ["sh", "-c", "echo boom; exit 3"]}]),
                     node.config.node_name)

    def in_back_off() -> bool:
        main = container_state(node.status("crash"), "main")
        return main.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff" \
            and main.get("restartCount", 0) >= 2

    await node.wait_for(in_back_off, timeout=30, what="CrashLoopBackOff after two restarts")
    main = container_state(node.status("crash"), "main")
    assert main["lastState"]["terminated"]["exitCode"] == 3
    assert main["lastState"]["terminated"]["reason"] == "Error"
    assert "back-off" in main["state"]["waiting"]["message"]
    assert node.status("crash")["phase"] == "Running"
