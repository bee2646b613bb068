"""The agent hands its Node's podCIDR to the runtime (CRI UpdateRuntimeConfig) once nodeipam set it, and again
whenever the runtime reports its network not ready."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import Any

from aiokube.api.resources import lookup
from aiokube.client import ApiClient
from aiokube.client.fake_api import FakeApiServer
from kubelet.cri import pb
from kubelet.pod_cidr import PodCidrSync, node_pod_cidrs


class FakeNetworkRuntime:
    """containerd's behaviour: NetworkReady only after a CIDR was given (it renders its CNI template then)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.ready = False

    async def status(self) -> Any:
        conditions = [pb.RuntimeCondition(type="RuntimeReady", status=True),
                      pb.RuntimeCondition(type="NetworkReady", status=self.ready)]
        return SimpleNamespace(status=pb.RuntimeStatus(conditions=conditions))

    async def update_runtime_config(self, pod_cidr: str) -> None:
        self.calls.append(pod_cidr)
        self.ready = True


def node(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec or {}}


def test_node_pod_cidrs_prefers_the_list() -> None:
    assert node_pod_cidrs(None) == ""
    assert node_pod_cidrs(node("n", {})) == ""
    assert node_pod_cidrs(node("n", {"podCIDR": "10.244.1.0/24"})) == "10.244.1.0/24"
    assert node_pod_cidrs(node("n", {"podCIDR": "10.244.1.0/24",
                                     "podCIDRs": ["10.244.1.0/24", "fd00::/64"]})) == "10.244.1.0/24,fd00::/64"


async def test_waits_for_the_allocation_then_configures_the_runtime_once() -> None:
    api = FakeApiServer()
    nodes = lookup("nodes")
    api.put(nodes, node("n1"))
    runtime = FakeNetworkRuntime()
    applied: list[str] = []

    async def on_applied(cidr: str) -> None:
        applied.append(cidr)

    async with ApiClient("http://fake", transport=api.transport()) as client:
        sync = PodCidrSync(client, runtime, "n1", on_applied=on_applied, recheck_interval=0.05)
        task = asyncio.create_task(sync.run())
        try:
            await asyncio.sleep(0.2)
            assert runtime.calls == [] and applied == []  # no podCIDR yet: the network stays not ready

            api.put(nodes, node("n1", {"podCIDR": "10.244.4.0/24", "podCIDRs": ["10.244.4.0/24"]}))
            for _ in range(100):
                if runtime.calls:
                    break
                await asyncio.sleep(0.01)
            assert runtime.calls == ["10.244.4.0/24"] and applied == ["10.244.4.0/24"]

            await asyncio.sleep(0.2)  # ready and unchanged: no more calls on the rechecks
            assert runtime.calls == ["10.244.4.0/24"]

            runtime.ready = False  # e.g. containerd restarted with an empty conf dir
            for _ in range(100):
                if len(runtime.calls) == 2:
                    break
                await asyncio.sleep(0.01)
            assert runtime.calls == ["10.244.4.0/24"] * 2
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_sync_once_without_a_node_does_nothing() -> None:
    api = FakeApiServer()
    runtime = FakeNetworkRuntime()
    async with ApiClient("http://fake", transport=api.transport()) as client:
        sync = PodCidrSync(client, runtime, "absent")
        assert await sync.sync_once() is False
    assert runtime.calls == []
