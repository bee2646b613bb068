"""The scheduler against the real API server on real etcd: binding, unschedulable status + event,
re-activation on node events, priority and preemption. Nodes are plain objects (no node agent)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.client import ApiClient
from scheduler.scheduler import Scheduler
from tests.unit.scheduler_fixtures import make_node, make_pod

pytestmark = pytest.mark.etcd

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


@contextlib.asynccontextmanager
async def running_scheduler(client: ApiClient) -> AsyncIterator[Scheduler]:
    scheduler = Scheduler(client, initial_backoff=0.05, max_backoff=0.2)
    task = asyncio.create_task(scheduler.run())
    try:
        yield scheduler
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {result!r})")
        await asyncio.sleep(0.05)




async def node_of(client: ApiClient, name: str) -> str:
    pod = await client.get("pods", name, namespace="default")
    return str(pod["spec"].get("nodeName") or "")


def scheduled_condition(pod: Obj) -> Obj:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"), {})


async def test_binds_and_reports_unschedulable(client: ApiClient) -> None:
    await client.create("nodes", make_node("cp", taints=[CONTROL_PLANE_TAINT]))
    for name in ("w1", "w2"):
        await client.create("nodes", make_node(name, cpu="1"))
    async with running_scheduler(client):
        await client.create("pods", make_pod("small", cpu="500m"))
        await client.create("pods", make_pod("big", cpu="2"))
        node = await eventually(lambda: node_of(client, "small"))
        assert node in ("w1", "w2")

        async def scheduled_true() -> bool:
            pod = await client.get("pods", "small", namespace="default")
            return scheduled_condition(pod).get("status") == "True"
        await eventually(scheduled_true)

        expected = ("0/3 nodes are available: 1 node(s) had untolerated taint "
                    "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes are "
                    "available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for "
                    "incoming pod.")

        async def unschedulable() -> Obj:
            pod = await client.get("pods", "big", namespace="default")
            cond = scheduled_condition(pod)
            return cond if cond.get("reason") == "Unschedulable" else {}
        condition = await eventually(unschedulable)
        assert condition["status"] == "False"
        assert condition["message"] == expected

        async def failed_event() -> list[Obj]:
            events = (await client.list("events", namespace="default"))["items"]
            return [e for e in events if e.get("reason") == "FailedScheduling"
                    and e["involvedObject"]["name"] == "big"]
        events = await eventually(failed_event)
        assert events[0]["type"] == "Warning" and events[0]["message"] == expected
        assert await node_of(client, "big") == ""


async def test_reactivated_by_new_node_and_uncordon(client: ApiClient) -> None:
    await client.create("nodes", make_node("cordoned", unschedulable=True))
    async with running_scheduler(client) as scheduler:
        await client.create("pods", make_pod("waiting", cpu="100m"))

        async def parked() -> bool:
            return scheduler.queue.where("default/waiting") == "unschedulable"
        await eventually(parked)
        await client.patch("nodes", "cordoned", {"spec": {"unschedulable": None}})
        assert await eventually(lambda: node_of(client, "waiting")) == "cordoned"

        await client.create("pods", make_pod("needs-gpu", nodeSelector={"gpu": "yes"}))
        await eventually(lambda: _where(scheduler, "default/needs-gpu", "unschedulable"))
        await client.create("nodes", make_node("gpu-node", labels={"gpu": "yes"}))
        assert await eventually(lambda: node_of(client, "needs-gpu")) == "gpu-node"


async def _where(scheduler: Scheduler, key: str, place: str) -> bool:
    return scheduler.queue.where(key) == place


async def test_priority_class_and_preemption(client: ApiClient) -> None:
    await client.create("priorityclasses", {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                            "metadata": {"name": "critical"}, "value": 1000})
    await client.create("nodes", make_node("only", cpu="2"))
    async with running_scheduler(client):
        for i in range(2):
            await client.create("pods", make_pod(f"low-{i}", cpu="1"))
        for i in range(2):
            assert await eventually(functools.partial(node_of, client, f"low-{i}")) == "only"
        await client.create("pods", make_pod("vip", cpu="1", priorityClassName="critical"))

        async def nominated() -> str:
            pod = await client.get("pods", "vip", namespace="default")
            return str((pod.get("status") or {}).get("nominatedNodeName") or "")
        assert await eventually(nominated) == "only"

        # The victim was deleted gracefully; play the kubelet and finish the deletion.
        async def terminating() -> list[str]:
            pods = (await client.list("pods", namespace="default"))["items"]
            return [p["metadata"]["name"] for p in pods if p["metadata"].get("deletionTimestamp")]
        victims = await eventually(terminating)
        assert len(victims) == 1 and victims[0].startswith("low-")
        for name in victims:
            with contextlib.suppress(ApiError):
                await client.delete("pods", name, namespace="default", grace_period_seconds=0)
        assert await eventually(lambda: node_of(client, "vip")) == "only"
        survivor = ({"low-0", "low-1"} - set(victims)).pop()
        assert await node_of(client, survivor) == "only"


async def test_spreads_many_pods_without_overcommit(client: ApiClient) -> None:
    for i in range(20):
        await client.create("nodes", make_node(f"n{i:02d}", cpu="1", memory="1Gi"))
    async with running_scheduler(client):
        await asyncio.gather(*(client.create("pods", make_pod(f"p{i:02d}", cpu="300m", memory="100Mi"))
                               for i in range(70)))

        async def placed() -> dict[str, str] | None:
            pods = (await client.list("pods", namespace="default"))["items"]
            nodes = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods}
            return nodes if sum(1 for n in nodes.values() if n) == 60 else None
        nodes = await eventually(placed, within=20)
        per_node: dict[str, int] = {}
        for node in nodes.values():
            if node:
                per_node[node] = per_node.get(node, 0) + 1
        assert max(per_node.values()) == 3 and len(per_node) == 20  # 3 x 300m per 1-CPU node, 10 left pending
