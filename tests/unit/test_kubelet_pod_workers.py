"""PodWorkers: one sync at a time per pod, updates during a sync collapse into one more, timers fire later."""

from __future__ import annotations

import asyncio

from kubelet.pod_workers import PodWorkers


async def test_updates_during_a_sync_collapse_into_one_more() -> None:
    calls: list[str] = []
    release = asyncio.Event()
    concurrent = 0
    max_concurrent = 0

    async def sync(uid: str) -> None:
        nonlocal concurrent, max_concurrent
        concurrent += 1
        max_concurrent = max(max_concurrent, concurrent)
        calls.append(uid)
        if len(calls) == 1:
            await release.wait()
        concurrent -= 1

    workers = PodWorkers(sync)
    workers.update("a")
    await asyncio.sleep(0)
    for _ in range(5):
        workers.update("a")  # arrive while the first sync runs
    release.set()
    for _ in range(100):
        if not workers.busy("a"):
            break
        await asyncio.sleep(0.01)
    assert calls == ["a", "a"]
    assert max_concurrent == 1
    await workers.close()


async def test_pods_sync_in_parallel_and_errors_retry() -> None:
    started: set[str] = set()
    both = asyncio.Event()
    attempts = {"b": 0}

    async def sync(uid: str) -> None:
        started.add(uid)
        if started == {"a", "b"}:
            both.set()
        await asyncio.wait_for(both.wait(), 1)
        if uid == "b":
            attempts["b"] += 1
            if attempts["b"] == 1:
                raise RuntimeError("transient")

    workers = PodWorkers(sync, error_retry_delay=0.05)
    try:
        workers.update("a")
        workers.update("b")
        await asyncio.wait_for(both.wait(), 1)
        for _ in range(100):
            if attempts["b"] >= 2:
                break
            await asyncio.sleep(0.01)
        assert attempts["b"] == 2
    finally:
        await workers.close()


async def test_update_after_keeps_the_earliest_timer() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def sync(uid: str) -> None:
        calls.append(loop.time() - start)

    workers = PodWorkers(sync)
    workers.update_after("a", 0.5)
    workers.update_after("a", 0.05)
    workers.update_after("a", 0.3)
    await asyncio.sleep(0.2)
    assert len(calls) == 1 and calls[0] < 0.2
    await asyncio.sleep(0.4)
    assert len(calls) == 1  # the later timers were superseded, not queued
    await workers.close()
