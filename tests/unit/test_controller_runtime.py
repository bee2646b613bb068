"""Controller: waits for informer sync, maps each reconcile outcome to its queue action and metrics,
never reconciles one key concurrently, shuts down cleanly on cancel."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from aiokube.client import (
    ApiClient,
    Controller,
    Informer,
    ItemExponentialRateLimiter,
    Result,
    TerminalError,
    WorkQueue,
)
from aiokube.client.fake_api import FakeApiServer
from aiokube.client.testing import FakeClock, settle


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class ScriptedReconciler:
    """Returns (or raises) the scripted outcomes per key in turn; records calls and overlap."""

    def __init__(self, script: dict[str, list[object]]) -> None:
        self.script = script
        self.calls: list[str] = []
        self.active: set[str] = set()
        self.overlap = False
        self.gate: asyncio.Event | None = None

    async def reconcile(self, key: str) -> Result:
        if key in self.active:
            self.overlap = True
        self.active.add(key)
        try:
            self.calls.append(key)
            if self.gate is not None:
                await self.gate.wait()
            outcome = self.script.get(key, [Result()]).pop(0) if self.script.get(key) else Result()
            if isinstance(outcome, BaseException):
                raise outcome
            assert isinstance(outcome, Result)
            return outcome
        finally:
            self.active.discard(key)


def make(name: str, reconciler: ScriptedReconciler, clock: FakeClock, workers: int = 2) -> Controller:
    queue = WorkQueue(name, clock=clock, rate_limiter=ItemExponentialRateLimiter(1.0, 60.0))
    return Controller(name, reconciler, workers=workers, queue=queue)


async def run_until(controller: Controller, condition: object) -> asyncio.Task[None]:
    task = asyncio.create_task(controller.run())
    await settle()
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_outcomes_map_to_queue_actions_and_metrics() -> None:
    clock = FakeClock()
    reconciler = ScriptedReconciler({
        "ns/ok": [Result()],
        "ns/flaky": [RuntimeError("transient"), RuntimeError("again"), Result()],
        "ns/broken": [TerminalError("invalid spec")],
        "ns/later": [Result(requeue_after=30.0), Result()],
    })
    controller = make("outcomes-test", reconciler, clock)
    task = await run_until(controller, None)
    try:
        for key in ("ns/ok", "ns/flaky", "ns/broken", "ns/later"):
            controller.queue.add(key)
        await settle()
        assert sorted(reconciler.calls) == ["ns/broken", "ns/flaky", "ns/later", "ns/ok"]
        await clock.advance(1.0)   # flaky: first retry after 1 s
        assert reconciler.calls.count("ns/flaky") == 2
        await clock.advance(1.9)
        assert reconciler.calls.count("ns/flaky") == 2
        await clock.advance(0.1)   # second retry after 2 more seconds, then success forgets it
        assert reconciler.calls.count("ns/flaky") == 3
        assert controller.queue.num_requeues("ns/flaky") == 0
        await clock.advance(27.0)  # requeue_after=30 s
        assert reconciler.calls.count("ns/later") == 2
        await clock.advance(600)
        assert reconciler.calls.count("ns/broken") == 1  # terminal: never retried
        assert reconciler.calls.count("ns/ok") == 1
    finally:
        await stop(task)
    assert metric("aiokube_reconcile_total", controller="outcomes-test", result="success") == 3
    assert metric("aiokube_reconcile_total", controller="outcomes-test", result="error") == 2
    assert metric("aiokube_reconcile_total", controller="outcomes-test", result="terminal_error") == 1
    assert metric("aiokube_reconcile_total", controller="outcomes-test", result="requeue_after") == 1
    assert metric("aiokube_reconcile_errors_total", controller="outcomes-test") == 3
    assert metric("aiokube_reconcile_duration_seconds_count", controller="outcomes-test") == 7


async def test_requeue_true_uses_the_rate_limiter() -> None:
    clock = FakeClock()
    reconciler = ScriptedReconciler({"k": [Result(requeue=True), Result()]})
    controller = make("requeue-test", reconciler, clock)
    task = await run_until(controller, None)
    try:
        controller.queue.add("k")
        await settle()
        assert reconciler.calls == ["k"]
        await clock.advance(1.0)
        assert reconciler.calls == ["k", "k"]
    finally:
        await stop(task)


async def test_one_key_is_never_reconciled_concurrently_but_reruns_after() -> None:
    clock = FakeClock()
    reconciler = ScriptedReconciler({})
    reconciler.gate = asyncio.Event()
    controller = make("serial-test", reconciler, clock, workers=4)
    task = await run_until(controller, None)
    try:
        controller.queue.add("k")
        await settle()
        controller.queue.add("k")  # arrives while "k" is in reconcile
        controller.queue.add("other")
        await settle()
        assert sorted(reconciler.calls) == ["k", "other"]
        reconciler.gate.set()
        await settle()
        assert reconciler.calls.count("k") == 2
        assert not reconciler.overlap
    finally:
        await stop(task)


async def test_workers_start_only_after_informers_sync() -> None:
    api = FakeApiServer()
    api.fail_next("GET", 403)  # the first list fails: the informer stays unsynced for a while
    clock = FakeClock()
    client = ApiClient("http://fake", transport=api.transport())
    informer = Informer(client, "pods", clock=clock, watch_timeout_seconds=60)
    reconciler = ScriptedReconciler({})
    controller = Controller("sync-test", reconciler, informers=[informer],
                            queue=WorkQueue(clock=clock))
    controller.queue.add("early")
    informer_task = asyncio.create_task(informer.run())
    task = await run_until(controller, None)
    try:
        await settle()
        assert reconciler.calls == []
        await clock.advance(5)  # informer backoff passes, the list succeeds
        await asyncio.wait_for(informer.wait_synced(), 2)
        await settle()
        assert reconciler.calls == ["early"]
    finally:
        await stop(task)
        await stop(informer_task)
    await client.aclose()


async def test_cancel_shuts_the_queue_down_and_waits_for_workers() -> None:
    clock = FakeClock()
    reconciler = ScriptedReconciler({})
    reconciler.gate = asyncio.Event()
    controller = make("cancel-test", reconciler, clock)
    task = await run_until(controller, None)
    controller.queue.add("k")
    await settle()
    await stop(task)
    assert task.cancelled()
    assert controller.queue.shutting_down
    assert reconciler.active == set()  # the in-flight reconcile was cancelled, not leaked
