"""A node agent on a real private containerd, driven by an in-memory stand-in for the API server.

`FakeApi` implements exactly the calls the agent makes (get/patch/delete/create/update) on a dict of objects
and feeds pod changes back into the agent's pod store the way the informer would. It lets the runtime
behaviour (restarts, back-off, init order, volumes, deletion, adoption) be tested fast and on its own; the
tests in test_node_agent.py run the same agent process against the real API server.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from kubelet.agent import Kubelet
from kubelet.config import KubeletConfig
from kubelet.cri import RuntimeClient

SHUTDOWN_DRAIN_SECONDS = 15.0  # bounds a stop in flight: the harness's pods use grace periods of a few seconds


def _key(resource: str, namespace: str | None, name: str) -> tuple[str, str, str]:
    return (resource, namespace or "", name)


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.status_writes: list[Obj] = []
        self.deleted: list[str] = []
        self.kubelet: Kubelet | None = None

    # --- helpers for tests ---
    def add_pod(self, pod: Obj, node_name: str) -> Obj:
        pod = copy.deepcopy(pod)
        meta = pod.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        pod["spec"]["nodeName"] = node_name
        pod.setdefault("status", {"phase": "Pending"})
        self.objects[_key("pods", meta["namespace"], meta["name"])] = pod
        self._notify(pod)
        return pod

    def add(self, resource: str, obj: Obj) -> None:
        meta = obj["metadata"]
        self.objects[_key(resource, meta.get("namespace", "default"), meta["name"])] = copy.deepcopy(obj)

    def pod(self, name: str, namespace: str = "default") -> Obj | None:
        return self.objects.get(_key("pods", namespace, name))

    def mark_deleted(self, name: str, grace: int, namespace: str = "default") -> None:
        pod = self.objects[_key("pods", namespace, name)]
        pod["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        pod["metadata"]["deletionGracePeriodSeconds"] = grace
        self._notify(pod)

    def _notify(self, pod: Obj, deleted: bool = False) -> None:
        if self.kubelet is None:
            return
        store = self.kubelet.informer.store
        if deleted:
            store.delete(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}")
        else:
            store.upsert(copy.deepcopy(pod))
        self.kubelet._on_pod(pod)

    # --- the ApiClient surface the agent uses ---
    async def get(self, resource: str, name: str, namespace: str | None = None) -> Obj:
        obj = self.objects.get(_key(resource, namespace, name))
        if obj is None:
            raise ApiError(404, f'{resource} "{name}" not found')
        return copy.deepcopy(obj)

    async def create(self, resource: str, body: Obj, namespace: str | None = None) -> Obj:
        meta = body["metadata"]
        key = _key(resource, namespace or meta.get("namespace"), meta["name"])
        if key in self.objects:
            raise ApiError(409, f'{resource} "{meta["name"]}" already exists')
        obj = copy.deepcopy(body)
        obj["metadata"].setdefault("uid", str(uuid.uuid4()))
        self.objects[key] = obj
        return copy.deepcopy(obj)

    async def update(self, resource: str, body: Obj, namespace: str | None = None) -> Obj:
        meta = body["metadata"]
        self.objects[_key(resource, namespace or meta.get("namespace"), meta["name"])] = copy.deepcopy(body)
        return body

    async def patch(self, resource: str, name: str, body: Obj, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None) -> Obj:
        key = _key(resource, namespace, name)
        obj = self.objects.get(key)
        if obj is None:
            raise ApiError(404, f'{resource} "{name}" not found')
        if subresource == "status":
            obj["status"] = {**obj.get("status", {}), **copy.deepcopy(body["status"])}
            if resource == "pods":
                self.status_writes.append(copy.deepcopy(obj["status"]))
                self._notify(obj)
        else:
            obj.update({k: v for k, v in body.items() if k != "status"})
        return copy.deepcopy(obj)

    async def delete(self, resource: str, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None, preconditions: dict[str, str] | None = None,
                     **_: Any) -> Obj:
        key = _key(resource, namespace, name)
        obj = self.objects.pop(key, None)
        if obj is None:
            raise ApiError(404, f'{resource} "{name}" not found')
        self.deleted.append(name)
        if resource == "pods":
            self._notify(obj, deleted=True)
        return {"kind": "Status", "status": "Success"}


def harness_config(node_name: str, socket: str, root_dir: str, **overrides: Any) -> KubeletConfig:
    settings: dict[str, Any] = dict(
        node_name=node_name, containerd_socket=socket, root_dir=root_dir, node_ip="127.0.0.1",
        cgroup_prefix=f"aiokube-test-{node_name}", server_port=0, backoff_initial=1.0, backoff_max=4.0,
        image_backoff_initial=1.0, pleg_period=0.2, resync_period=1.0, housekeeping_period=0.5,
    )
    settings.update(overrides)
    return KubeletConfig(**settings)


class Harness:
    """Runs a Kubelet's loops (minus the informer, which FakeApi replaces) until `stop()`."""

    def __init__(self, config: KubeletConfig, api: FakeApi) -> None:
        self.config = config
        self.api = api
        self.runtime = RuntimeClient(config.containerd_socket)
        self.kubelet = Kubelet(config, api, self.runtime)  # type: ignore[arg-type]
        api.kubelet = self.kubelet
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.kubelet.pleg.relist()
        for pod in self.kubelet.informer.store.list():
            self.kubelet._on_pod(pod)
        await self.kubelet.housekeeping()
        self._tasks = [asyncio.create_task(self.kubelet.pleg.run()),
                       asyncio.create_task(self._housekeeping())]

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self.config.housekeeping_period)
            await self.kubelet.housekeeping()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # As the agent's own shutdown does: let syncs in flight finish first. Cancelled here, a liveness restart's
        # StopContainer went on inside containerd (a cancelled CRI call is not undone) while the test's teardown
        # stopped the same container again, two stops racing on a loaded machine.
        self.kubelet.probes.close()
        await self.kubelet.workers.drain(SHUTDOWN_DRAIN_SECONDS)
        await self.kubelet.close()
        await self.runtime.close()

    def status(self, name: str) -> Obj:
        pod = self.api.pod(name)
        assert pod is not None, f"pod {name} is gone"
        return dict(pod.get("status", {}))

    async def wait_for(self, predicate: Callable[[], bool], within: float = 20.0, what: str = "") -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or predicate}")


def container_state(status: Obj, name: str, init: bool = False) -> Obj:
    key = "initContainerStatuses" if init else "containerStatuses"
    return next((c for c in status.get(key) or [] if c["name"] == name), {})


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def exists(path: str) -> bool:
    return os.path.exists(path)


def cgroup_memory_limits(cgroup: str) -> list[str]:
    """memory.limit_in_bytes of every container cgroup under a pod cgroup (cgroup v1)."""
    return [read_text(os.path.join(cgroup, d, "memory.limit_in_bytes")).strip()
            for d in os.listdir(cgroup) if os.path.isdir(os.path.join(cgroup, d))]


def cgroup_cpu_quotas(cgroup: str) -> list[str]:
    """cpu.cfs_quota_us of every container cgroup under a pod cgroup (cgroup v1); -1 = unlimited."""
    return [read_text(os.path.join(cgroup, d, "cpu.cfs_quota_us")).strip()
            for d in os.listdir(cgroup) if os.path.isdir(os.path.join(cgroup, d))]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
