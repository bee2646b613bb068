"""WorkQueue invariants (dedupe, never two workers on one key, re-run after done), delays and rate limits."""

from __future__ import annotations

import asyncio

import pytest

from aiokube.client import (
    ItemExponentialRateLimiter,
    TokenBucketRateLimiter,
    WorkQueue,
    default_controller_rate_limiter,
)
from aiokube.client.testing import FakeClock, settle


async def test_duplicates_collapse_and_order_is_fifo() -> None:
    queue = WorkQueue(clock=FakeClock())
    for key in ["a", "b", "a", "c", "b"]:
        queue.add(key)
    assert len(queue) == 3
    assert [await queue.get() for _ in range(3)] == ["a", "b", "c"]


async def test_key_added_while_processing_runs_again_after_done_not_in_parallel() -> None:
    queue = WorkQueue(clock=FakeClock())
    queue.add("a")
    assert await queue.get() == "a"
    queue.add("a")
    queue.add("a")
    assert len(queue) == 0  # held back: "a" is being processed
    second = asyncio.create_task(queue.get())
    await settle()
    assert not second.done()
    queue.done("a")
    assert await asyncio.wait_for(second, 1) == "a"
    queue.done("a")
    assert len(queue) == 0


async def test_waiting_workers_are_woken_by_add() -> None:
    queue = WorkQueue(clock=FakeClock())
    getters = [asyncio.create_task(queue.get()) for _ in range(2)]
    await settle()
    queue.add("x")
    queue.add("y")
    assert sorted(str(k) for k in await asyncio.wait_for(asyncio.gather(*getters), 1)) == ["x", "y"]


async def test_add_after_waits_for_the_clock_and_keeps_the_earliest_time() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    queue.add_after("k", 10)
    queue.add_after("k", 3)   # earlier: wins
    queue.add_after("k", 20)  # later: ignored
    getter = asyncio.create_task(queue.get())
    await clock.advance(2.9)
    assert not getter.done()
    await clock.advance(0.2)
    assert await asyncio.wait_for(getter, 1) == "k"
    queue.done("k")
    await clock.advance(30)
    assert len(queue) == 0  # the superseded entries did not add it again


async def test_add_rate_limited_backs_off_per_item_and_forget_resets() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock, rate_limiter=ItemExponentialRateLimiter(1.0, 8.0))
    delays = []
    for _ in range(5):
        start = clock.time
        queue.add_rate_limited("k")
        getter = asyncio.create_task(queue.get())
        while not getter.done():
            await clock.advance(0.5)
        assert getter.result() == "k"
        queue.done("k")
        delays.append(clock.time - start)
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert queue.num_requeues("k") == 5
    queue.forget("k")
    assert queue.num_requeues("k") == 0


def test_item_exponential_defaults_match_client_go() -> None:
    limiter = ItemExponentialRateLimiter()
    assert [limiter.when("a") for _ in range(3)] == [0.005, 0.01, 0.02]
    for _ in range(40):
        limiter.when("a")
    assert limiter.when("a") == 1000.0
    assert limiter.when("b") == 0.005


def test_token_bucket_allows_a_burst_then_paces_at_qps() -> None:
    clock = FakeClock()
    bucket = TokenBucketRateLimiter(qps=10, burst=100, clock=clock)
    assert all(bucket.when(str(i)) == 0 for i in range(100))
    assert bucket.when("x") == pytest.approx(0.1)
    assert bucket.when("y") == pytest.approx(0.2)
    clock.time += 10  # refill fully
    assert bucket.when("z") == 0


def test_default_limiter_is_the_max_of_both() -> None:
    clock = FakeClock()
    limiter = default_controller_rate_limiter(clock)
    assert limiter.when("a") == 0.005
    for i in range(200):
        limiter.when(f"other-{i}")
    assert limiter.when("b") > 1.0  # bucket exhausted dominates the per-item 5 ms


async def test_shutdown_releases_waiting_workers_and_refuses_new_keys() -> None:
    queue = WorkQueue(clock=FakeClock())
    getter = asyncio.create_task(queue.get())
    await settle()
    queue.shutdown()
    assert await asyncio.wait_for(getter, 1) is None
    queue.add("late")
    assert len(queue) == 0
    assert await queue.get() is None
