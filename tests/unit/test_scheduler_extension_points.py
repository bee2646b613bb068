"""Reserve and Bind extension points: added plugins are called, and a failing Reserve or Bind undoes the
cache assumption (Unreserve) and sends the pod to backoff."""

from __future__ import annotations

from aiokube.api.types import Obj
from scheduler.framework import SKIP, SUCCESS, CycleState, Status
from scheduler.podinfo import PodInfo
from scheduler.scheduler import Scheduler
from tests.unit.scheduler_fixtures import make_node, make_pod
from tests.unit.test_scheduler_loop import Clock, FakeClient, FakeRecorder, run_one


class RecordingReserve:
    name = "RecordingReserve"

    def __init__(self, verdict: Status = SUCCESS) -> None:
        self.verdict = verdict
        self.calls: list[tuple[str, str, str]] = []

    def reserve(self, state: CycleState, pod: PodInfo, node_name: str) -> Status:
        self.calls.append(("reserve", pod.key, node_name))
        return self.verdict

    def unreserve(self, state: CycleState, pod: PodInfo, node_name: str) -> None:
        self.calls.append(("unreserve", pod.key, node_name))


class RecordingBinder:
    name = "RecordingBinder"

    def __init__(self, verdict: Status) -> None:
        self.verdict = verdict
        self.calls: list[tuple[str, str]] = []

    async def bind(self, pod: Obj, node_name: str) -> Status:
        self.calls.append((pod["metadata"]["name"], node_name))
        return self.verdict


def scheduler_with(*plugins: object) -> tuple[Scheduler, FakeClient, FakeRecorder]:
    client, recorder = FakeClient(), FakeRecorder()
    scheduler = Scheduler(client, recorder=recorder, clock=Clock(),  # type: ignore[arg-type]
                          extra_plugins=plugins)  # type: ignore[arg-type]
    scheduler.on_node_add(make_node("n1", cpu="2"))
    scheduler.on_pod_add(make_pod("web", cpu="1"))
    return scheduler, client, recorder


async def test_reserve_plugin_called_after_assume_and_bind_by_default_binder() -> None:
    reserve = RecordingReserve()
    scheduler, client, _ = scheduler_with(reserve)
    await run_one(scheduler)
    assert reserve.calls == [("reserve", "default/web", "n1")]
    assert scheduler.cache.is_assumed("default/web")
    assert client.bindings == [("web", "n1")]


async def test_failing_reserve_unreserves_everything_and_backs_off() -> None:
    reserve = RecordingReserve(Status.unschedulable("volume gone", plugin="RecordingReserve"))
    scheduler, client, recorder = scheduler_with(reserve)
    await run_one(scheduler)
    assert reserve.calls == [("reserve", "default/web", "n1"), ("unreserve", "default/web", "n1")]
    assert not scheduler.cache.is_assumed("default/web")
    assert scheduler.cache.table.requested[0][0] == 0  # the default (assume) Reserve was undone too
    assert client.bindings == []
    assert scheduler.queue.where("default/web") == "backoff"
    assert recorder.events[-1][2] == "FailedScheduling" and "volume gone" in recorder.events[-1][3]


async def test_bind_plugin_that_binds_replaces_the_default_binder() -> None:
    binder = RecordingBinder(SUCCESS)
    scheduler, client, _ = scheduler_with(binder)
    await run_one(scheduler)
    assert binder.calls == [("web", "n1")]
    assert client.bindings == []  # the first plugin that answers decides; the POST never happened


async def test_bind_plugin_that_skips_falls_through_to_default_binder() -> None:
    binder = RecordingBinder(SKIP)
    scheduler, client, _ = scheduler_with(binder)
    await run_one(scheduler)
    assert binder.calls == [("web", "n1")]
    assert client.bindings == [("web", "n1")]


async def test_failing_bind_unreserves_and_backs_off() -> None:
    reserve = RecordingReserve()
    binder = RecordingBinder(Status.error("storage offline"))
    scheduler, client, recorder = scheduler_with(reserve, binder)
    await run_one(scheduler)
    assert binder.calls == [("web", "n1")]
    assert reserve.calls == [("reserve", "default/web", "n1"), ("unreserve", "default/web", "n1")]
    assert not scheduler.cache.is_assumed("default/web")
    assert scheduler.cache.table.requested[0][0] == 0
    assert client.bindings == []
    assert scheduler.queue.where("default/web") == "backoff"
    assert "RecordingBinder: storage offline" in recorder.events[-1][3]
