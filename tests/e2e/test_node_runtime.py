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
from kubelet.node_status import default_node_ip as default_host_ip
from tests.e2e.node_harness import (
    FakeApi,
    Harness,
    b64,
    cgroup_cpu_quotas,
    cgroup_memory_limits,
    container_state,
    exists,
    harness_config,
    read_text,
)
from tests.support.containerd import PrivateContainerd, containerd_fixture
from tests.support.etcd import free_port

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
        "ports": [{"name": "http", "containerPort": 8080}],
        "startupProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1, "failureThreshold": 10},
        "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1},
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
    web_id = web["containerID"].removeprefix("containerd://")
    mounts = (await node.runtime.exec_sync(web_id, ["cat", "/proc/mounts"], 5)).stdout.decode()
    assert any(line.split()[1:3] == ["/www", "tmpfs"] for line in mounts.splitlines())  # medium: Memory
    # Limits reach the pod's cgroup.
    uid = created["metadata"]["uid"]
    cgroup = f"/sys/fs/cgroup/memory/{node.config.cgroup_prefix}/pod{uid}"
    assert str(64 * 1024 * 1024) in cgroup_memory_limits(cgroup)
    # cpu 500m = 50 ms of CPU per 100 ms period (CFS quota).
    assert "50000" in cgroup_cpu_quotas(f"/sys/fs/cgroup/cpu/{node.config.cgroup_prefix}/pod{uid}")


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

    await node.wait_for(in_back_off, within=30, what="CrashLoopBackOff after two restarts")
    main = container_state(node.status("crash"), "main")
    assert main["lastState"]["terminated"]["exitCode"] == 3
    assert main["lastState"]["terminated"]["reason"] == "Error"
    assert "back-off" in main["state"]["waiting"]["message"]
    assert node.status("crash")["phase"] == "Running"
    from kubelet.server import make_app

    transport = httpx.ASGITransport(app=make_app(node.kubelet))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        previous = await http.get("/containerLogs/default/crash/main", params={"previous": "true"})
        assert previous.status_code == 200 and previous.text == "boom\n"


async def test_init_containers_run_in_order_before_app(node: Harness) -> None:
    spec = pod("init", [{"name": "app", "command": ["sh", "-c", "echo app >> /work/order; sleep 3600"],
                         "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
               initContainers=[
                   {"name": "first", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", "sleep 0.3; echo first >> /work/order"],
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                   {"name": "second", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", "echo second >> /work/order"],
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
               ],
               volumes=[{"name": "work", "emptyDir": {}}])
    node.api.add_pod(spec, node.config.node_name)
    await node.wait_for(lambda: running(node, "init"), what="init pod Running")
    status = node.status("init")
    for name in ("first", "second"):
        term = container_state(status, name, init=True)["state"]["terminated"]
        assert term["exitCode"] == 0 and term["reason"] == "Completed"
    app_id = container_state(status, "app")["containerID"].removeprefix("containerd://")
    result = await node.runtime.exec_sync(app_id, ["cat", "/work/order"], 5)
    assert result.stdout.decode().split() == ["first", "second", "app"]


async def test_graceful_delete_waits_for_the_container_then_removes_the_pod(node: Harness) -> None:
    # The container takes ~1 s to exit after SIGTERM; preStop leaves a mark first.
    script = "trap 'sleep 1; exit 0' TERM; while true; do sleep 0.1; done"
    spec = pod("graceful", [{"name": "main", "command": ["sh", "-c", script],
                             "lifecycle": {
                                 "postStart": {"exec": {"command": ["sh", "-c", "echo hi > /mark/post"]}},
                                 "preStop": {"exec": {"command": ["sh", "-c", "echo bye > /mark/x"]}}},
                             "volumeMounts": [{"name": "mark", "mountPath": "/mark"}]}],
               volumes=[{"name": "mark", "hostPath": {"path": os.path.join(node.config.root_dir, "mark"),
                                                      "type": "DirectoryOrCreate"}}],
               terminationGracePeriodSeconds=10)
    created = node.api.add_pod(spec, node.config.node_name)
    uid = created["metadata"]["uid"]
    await node.wait_for(lambda: running(node, "graceful"), what="Running")
    started = time.monotonic()
    node.api.mark_deleted("graceful", 10)
    await node.wait_for(lambda: "graceful" in node.api.deleted, within=15, what="pod deleted from the API")
    took = time.monotonic() - started
    assert 1.0 <= took < 8, f"graceful stop took {took:.1f}s"
    assert read_text(os.path.join(node.config.root_dir, "mark", "post")) == "hi\n"
    assert read_text(os.path.join(node.config.root_dir, "mark", "x")) == "bye\n"
    assert (await node.kubelet.runtime_pod(uid)).sandboxes == []
    assert not exists(node.kubelet.volumes.pod_dir(uid))
    assert not exists(f"/sys/fs/cgroup/memory/{node.config.cgroup_prefix}/pod{uid}")


async def test_agent_restart_adopts_running_containers(node: Harness, containerd: PrivateContainerd) -> None:
    node.api.add_pod(pod("adopt", [{"name": "main", "command": ["sleep", "3600"]}]), node.config.node_name)
    await node.wait_for(lambda: running(node, "adopt"), what="Running")
    before = container_state(node.status("adopt"), "main")
    await node.stop()
    # A brand-new agent (fresh memory) over the same runtime and API objects.
    again = Harness(node.config, node.api)
    for p in list(node.api.objects.values()):
        if p.get("kind") == "Pod":
            again.kubelet.informer.store.upsert(p)
    await again.start()
    try:
        await asyncio.sleep(1.5)
        after = container_state(again.status("adopt"), "main")
        assert after["containerID"] == before["containerID"]
        assert after["restartCount"] == 0 and "running" in after["state"]
        uid = node.api.pod("adopt")["metadata"]["uid"]  # type: ignore[index]
        assert len((await again.kubelet.runtime_pod(uid)).containers) == 1
    finally:
        await again.stop()
        node.runtime = RuntimeClient(containerd.socket)  # the fixture's teardown closes it again
        node._tasks = []


async def test_missing_image_reports_err_image_pull(node: Harness) -> None:
    node.api.add_pod(pod("noimage", [{"name": "main", "image": "localhost/does-not-exist:1"}]),
                     node.config.node_name)

    def reason() -> str:
        waiting = container_state(node.status("noimage"), "main").get("state", {}).get("waiting", {})
        return str(waiting.get("reason", ""))

    await node.wait_for(lambda: reason() in ("ErrImagePull", "ImagePullBackOff"), what="image error")
    await node.wait_for(lambda: reason() == "ImagePullBackOff", within=10, what="ImagePullBackOff")
    assert node.status("noimage")["phase"] == "Pending"


async def test_never_restarting_pod_succeeds_and_keeps_logs(node: Harness) -> None:
    script = "echo line1; echo line2; sleep 0.2; echo e >&2"
    node.api.add_pod(pod("once", [{"name": "main", "command": ["sh", "-c", script]}], restartPolicy="Never"),
                     node.config.node_name)
    await node.wait_for(lambda: node.status("once").get("phase") == "Succeeded", what="Succeeded")
    term = container_state(node.status("once"), "main")["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    conditions = {c["type"]: c for c in node.status("once")["conditions"]}
    assert conditions["Ready"]["status"] == "False" and conditions["Ready"]["reason"] == "PodCompleted"

    from kubelet.server import make_app

    transport = httpx.ASGITransport(app=make_app(node.kubelet))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        r = await http.get("/containerLogs/default/once/main")
        assert r.text == "line1\nline2\ne\n"
        r = await http.get("/containerLogs/default/once/main", params={"tailLines": "1", "timestamps": "true"})
        assert r.text.endswith(" e\n") and r.text[:4].isdigit()
        r = await http.get("/containerLogs/default/once/nope")
        assert r.status_code == 400


async def test_liveness_probe_failure_restarts_the_container(node: Harness) -> None:
    spec = pod("live", [{"name": "main", "command": ["sh", "-c", "touch /tmp/ok; sleep 1; rm /tmp/ok; sleep 3600"],
                         "livenessProbe": {"exec": {"command": ["cat", "/tmp/ok"]}, "periodSeconds": 1,
                                           "failureThreshold": 1}}])
    node.api.add_pod(spec, node.config.node_name)
    await node.wait_for(lambda: container_state(node.status("live"), "main").get("restartCount", 0) >= 1,
                        within=20, what="restart after liveness failure")


async def test_containers_of_pods_not_bound_here_are_removed(node: Harness) -> None:
    node.api.add_pod(pod("stray", [{"name": "main", "command": ["sleep", "3600"]}]), node.config.node_name)
    await node.wait_for(lambda: running(node, "stray"), what="Running")
    uid = node.api.pod("stray")["metadata"]["uid"]  # type: ignore[index]
    # The pod vanishes from the API without a graceful deletion (e.g. force-deleted while we were away).
    node.api.objects.pop(("pods", "default", "stray"))
    node.kubelet.informer.store.delete("default/stray")
    node.kubelet.workers.update(uid)

    async def gone() -> bool:
        rt = await node.kubelet.runtime_pod(uid)
        return not rt.sandboxes and not rt.containers

    deadline = time.monotonic() + 15
    while not await gone():
        assert time.monotonic() < deadline, "runtime pod was not removed"
        await asyncio.sleep(0.1)
    labels = {L.POD_UID: uid}
    assert await node.runtime.list_containers(labels) == []


async def test_host_network_and_host_port(node: Harness) -> None:
    host_port = free_port()
    node.api.add_pod(pod("hostnet", [{"name": "main", "command": ["sleep", "3600"]}], hostNetwork=True),
                     node.config.node_name)
    node.api.add_pod(pod("hostport", [{"name": "web", "command": ["sh", "-c", "echo hp > /i; httpd -f -p 80 -h /"],
                                       "ports": [{"containerPort": 80, "hostPort": host_port}]}]),
                     node.config.node_name)
    await node.wait_for(lambda: running(node, "hostnet") and running(node, "hostport"), what="both Running")
    assert node.status("hostnet")["podIP"] == "127.0.0.1"  # the node's IP
    # hostPort: the portmap plugin DNATs the node's port to the pod (reach it on a non-loopback host address).
    host_ip = default_host_ip()
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://{host_ip}:{host_port}/i")).text == "hp\n"


async def test_memory_hog_is_oom_killed(node: Harness) -> None:
    spec = pod("hog", [{"name": "main", "command": ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1"],
                        "resources": {"limits": {"memory": "16Mi"}}}], restartPolicy="Never")
    node.api.add_pod(spec, node.config.node_name)
    await node.wait_for(lambda: node.status("hog").get("phase") == "Failed", what="Failed")
    term = container_state(node.status("hog"), "main")["state"]["terminated"]
    assert term["reason"] == "OOMKilled" and term["exitCode"] == 137


async def test_events_are_recorded(node: Harness) -> None:
    node.api.add_pod(pod("evented", [{"name": "main", "command": ["sleep", "3600"]}]), node.config.node_name)
    await node.wait_for(lambda: running(node, "evented"), what="Running")

    def reasons() -> set[str]:
        return {o.get("reason", "") for (res, _, _), o in node.api.objects.items() if res == "events"}

    await node.wait_for(lambda: "Started" in reasons(), within=5, what="Started event")


async def test_missing_configmap_then_updates_reach_the_volume(node: Harness) -> None:
    spec = pod("cfg", [{"name": "main", "command": ["sleep", "3600"],
                        "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}],
               volumes=[{"name": "cfg", "configMap": {"name": "late"}}])
    node.api.add_pod(spec, node.config.node_name)

    def waiting_reason() -> str:
        state = container_state(node.status("cfg"), "main").get("state", {})
        return str(state.get("waiting", {}).get("reason", ""))

    await node.wait_for(lambda: waiting_reason() == "CreateContainerConfigError", what="config error")
    assert 'configmap "late" not found' in container_state(node.status("cfg"), "main")["state"]["waiting"]["message"]
    node.api.add("configmaps", {"metadata": {"name": "late", "namespace": "default"}, "data": {"k": "v1"}})
    await node.wait_for(lambda: running(node, "cfg"), what="Running once the ConfigMap exists")
    cid = container_state(node.status("cfg"), "main")["containerID"].removeprefix("containerd://")
    assert (await node.runtime.exec_sync(cid, ["cat", "/cfg/k"], 5)).stdout == b"v1"
    node.api.add("configmaps", {"metadata": {"name": "late", "namespace": "default"}, "data": {"k": "v2"}})
    deadline = time.monotonic() + 10
    while (await node.runtime.exec_sync(cid, ["cat", "/cfg/k"], 5)).stdout != b"v2":
        assert time.monotonic() < deadline, "the ConfigMap update never reached the volume"
        await asyncio.sleep(0.2)


async def test_security_context_user_and_group(node: Harness) -> None:
    spec = pod("user", [{"name": "main", "command": ["sleep", "3600"],
                         "securityContext": {"runAsUser": 65534}}], securityContext={"runAsGroup": 65534})
    node.api.add_pod(spec, node.config.node_name)
    await node.wait_for(lambda: running(node, "user"), what="Running")
    cid = container_state(node.status("user"), "main")["containerID"].removeprefix("containerd://")
    ids = (await node.runtime.exec_sync(cid, ["sh", "-c", "id -u; id -g"], 5)).stdout.decode().split()
    assert ids == ["65534", "65534"]
