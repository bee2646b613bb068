"""Scheduler wiring with a fake API client: bind, assume/forget on failure, unschedulable status patch,
our own status writes do not requeue a pod, node events re-activate it."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from scheduler.scheduler import Scheduler
from tests.unit.scheduler_fixtures import make_node, make_pod


class FakeClient:
    def __init__(self) -> None:
        self.bindings: list[tuple[str, str]] = []
        self.patches: list[tuple[str, Obj]] = []
        self.fail_binding: ApiError | None = None

    async def create_subresource(self, resource: str, name: str, sub: str, body: Obj, namespace: str = "") -> Obj:
        if self.fail_binding is not None:
            raise self.fail_binding
        self.bindings.append((name, body["target"]["name"]))
        return {"kind": "Status", "status": "Success"}

    async def patch(self, resource: str, name: str, body: Obj, **kwargs: Any) -> Obj:
        self.patches.append((name, body))
        return {}


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    async def event(self, involved: Obj, type_: str, reason: str, message: str) -> None:
        self.events.append((involved["metadata"]["name"], type_, reason, message))


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def make_scheduler() -> tuple[Scheduler, FakeClient, FakeRecorder, Clock]:
    client, recorder, clock = FakeClient(), FakeRecorder(), Clock()
    scheduler = Scheduler(client, recorder=recorder, clock=clock)  # type: ignore[arg-type]
    return scheduler, client, recorder, clock


async def run_one(scheduler: Scheduler) -> None:
    qp = scheduler.queue.pop_nowait()
    assert qp is not None
    await scheduler.schedule_one(qp)
    await scheduler.binder.wait_idle()
    for _ in range(5):
        await asyncio.sleep(0)


async def test_binds_and_confirms() -> None:
    scheduler, client, recorder, _ = make_scheduler()
    scheduler.on_node_add(make_node("n1"))
    scheduler.on_pod_add(make_pod("web", cpu="1"))
    await run_one(scheduler)
    assert client.bindings == [("web", "n1")]
    assert scheduler.cache.is_assumed("default/web")
    assert ("web", "Normal", "Scheduled", "Successfully assigned default/web to n1") in recorder.events
    bound = make_pod("web", cpu="1", node="n1")
    scheduler.on_pod_update(make_pod("web", cpu="1"), bound)
    assert not scheduler.cache.is_assumed("default/web")
    # The API server's binding did not set PodScheduled=True, so the scheduler does.
    await asyncio.sleep(0)
    assert any(body["status"]["conditions"][0]["status"] == "True" for _, body in client.patches)


async def test_failed_binding_forgets_and_backs_off() -> None:
    scheduler, client, recorder, _ = make_scheduler()
    scheduler.on_node_add(make_node("n1", cpu="1"))
    scheduler.on_pod_add(make_pod("web", cpu="1"))
    client.fail_binding = ApiError(500, "etcd is down")
    await run_one(scheduler)
    assert not scheduler.cache.is_assumed("default/web")
    assert scheduler.cache.table.requested[0][0] == 0
    assert scheduler.queue.where("default/web") == "backoff"
    assert recorder.events[-1][2] == "FailedScheduling" and "Binding rejected" in recorder.events[-1][3]


async def test_unschedulable_then_node_added() -> None:
    scheduler, client, _, clock = make_scheduler()
    scheduler.on_node_add(make_node("small", cpu="1"))
    pending = make_pod("big", cpu="2")
    scheduler.on_pod_add(pending)
    await run_one(scheduler)
    assert scheduler.queue.where("default/big") == "unschedulable"
    name, body = client.patches[-1]
    condition = body["status"]["conditions"][0]
    assert (name, condition["reason"]) == ("big", "Unschedulable")
    assert condition["message"].startswith("0/1 nodes are available: 1 Insufficient cpu.")
    # Our own status write comes back as an update: it must not trigger another attempt.
    scheduler.on_pod_update(pending, {**pending, "status": {"conditions": [condition]}})
    assert scheduler.queue.where("default/big") == "unschedulable"
    clock.now += 2  # past the backoff
    scheduler.on_node_add(make_node("large", cpu="4"))
    assert scheduler.queue.where("default/big") == "active"
    await run_one(scheduler)
    assert client.bindings == [("big", "large")]


async def test_ignores_other_schedulers_and_terminating_pods() -> None:
    scheduler, _, _, _ = make_scheduler()
    scheduler.on_pod_add(make_pod("other", schedulerName="my-scheduler"))
    terminating = make_pod("gone")
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    scheduler.on_pod_add(terminating)
    assert len(scheduler.queue) == 0


async def test_priority_from_priority_class() -> None:
    scheduler, _, _, _ = make_scheduler()
    scheduler.on_priority_class({"metadata": {"name": "high"}, "value": 1000})
    scheduler.on_priority_class({"metadata": {"name": "default"}, "value": 7, "globalDefault": True})
    assert scheduler.priority_of(make_pod("a", priorityClassName="high")) == 1000
    assert scheduler.priority_of(make_pod("b")) == 7
    assert scheduler.priority_of(make_pod("c", priority=3, priorityClassName="high")) == 3
