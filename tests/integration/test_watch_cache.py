"""WatchCache on a real etcd: fan-out, history, catch-up from etcd, slow subscribers, compaction, consistency."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import pytest

from apiserver.compactor import Compactor
from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.interface import (
    CompactedError,
    ConflictError,
    KeyExistsError,
    KeyNotFoundError,
    StorageUnavailableError,
    WatchEvent,
)
from apiserver.watch_cache import Subscription, WatchCache, WatcherTooSlowError
from tests.support.etcd import etcd_watcher_count, restartable_etcd

pytestmark = pytest.mark.etcd


async def started(storage: EtcdStorage, prefix: str, **options: int) -> WatchCache:
    cache = WatchCache(storage, prefix, **options)
    await cache.start()
    return cache


async def take(sub: Subscription, count: int, within: float = 5.0) -> list[WatchEvent]:
    async def collect() -> list[WatchEvent]:
        return [await anext(sub) for _ in range(count)]
    return await asyncio.wait_for(collect(), within)


async def seen_by(cache: WatchCache, revision: int) -> None:
    """Return once the cache has dispatched `revision` (a revision of an event under its prefix)."""
    async with cache.subscribe(after_revision=revision - 1) as sub:
        await take(sub, 1)


async def write_many(storage: EtcdStorage, prefix: str, count: int, tag: str = "k") -> list[int]:
    return [await storage.create(f"{prefix}/{tag}-{i:04d}", f"v{i}".encode()) for i in range(count)]


async def test_every_subscriber_sees_every_event(storage: EtcdStorage, etcd_prefix: str) -> None:
    cache = await started(storage, f"{etcd_prefix}/")
    try:
        subs = [cache.subscribe(after_revision=cache.revision) for _ in range(5)]
        created = await storage.create(f"{etcd_prefix}/a", b"1")
        updated = await storage.update(f"{etcd_prefix}/a", b"2", expected_revision=created)
        _, deleted = await storage.delete(f"{etcd_prefix}/a")
        for sub in subs:
            events = await take(sub, 3)
            assert [(e.type, e.value, e.prev_value, e.revision) for e in events] == [
                ("PUT", b"1", None, created), ("PUT", b"2", b"1", updated), ("DELETE", None, b"2", deleted)]
            assert sub.last_revision == deleted
        assert cache.revision == deleted
        for sub in subs:
            sub.close()
        assert cache.subscriber_count == 0
    finally:
        await cache.stop()


async def test_late_subscriber_is_served_from_history(storage: EtcdStorage, etcd_prefix: str) -> None:
    cache = await started(storage, f"{etcd_prefix}/", history_size=100)
    try:
        revisions = await write_many(storage, etcd_prefix, 10)
        await seen_by(cache, revisions[-1])
        sub = cache.subscribe(after_revision=revisions[3])
        assert [e.revision for e in await take(sub, 6)] == revisions[4:]
        live = await storage.create(f"{etcd_prefix}/live", b"x")
        assert [e.revision for e in await take(sub, 1)] == [live]
        # A revision newer than anything seen yet: nothing until a newer event.
        ahead = cache.subscribe(after_revision=live)
        newest = await storage.create(f"{etcd_prefix}/newest", b"x")
        assert [e.revision for e in await take(ahead, 1)] == [newest]
    finally:
        await cache.stop()


async def test_subscriber_older_than_history_catches_up_from_etcd(storage: EtcdStorage, etcd_prefix: str,
                                                                  etcd_url: str) -> None:
    watchers_before = etcd_watcher_count(etcd_url)
    start = await storage.current_revision()
    early = await write_many(storage, etcd_prefix, 5, tag="early")  # before the cache existed
    cache = await started(storage, f"{etcd_prefix}/", history_size=5)
    try:
        later = await write_many(storage, etcd_prefix, 12, tag="later")  # pushes the history floor up
        await seen_by(cache, later[-1])
        assert cache.history_floor > start
        sub = cache.subscribe(after_revision=start)
        caught_up = await take(sub, 17)
        assert [e.revision for e in caught_up] == early + later
        # Writes racing the switch from the direct watch to the cache are neither lost nor doubled.
        racing = asyncio.create_task(write_many(storage, etcd_prefix, 20, tag="racing"))
        racing_events = await take(sub, 20)
        assert [e.revision for e in racing_events] == await racing
        assert cache.subscriber_count == 1  # attached to the live stream again
        for _ in range(50):  # the direct watch is cancelled in etcd: only the cache's own remains
            if etcd_watcher_count(etcd_url) == watchers_before + 1:
                break
            await asyncio.sleep(0.02)
        assert etcd_watcher_count(etcd_url) == watchers_before + 1
        sub.close()
    finally:
        await cache.stop()


async def test_subscriber_from_a_compacted_revision_gets_compacted_error(
        storage: EtcdStorage, etcd_prefix: str) -> None:
    old = await storage.create(f"{etcd_prefix}/a", b"1")
    await storage.update(f"{etcd_prefix}/a", b"2", expected_revision=old)
    cache = await started(storage, f"{etcd_prefix}/")
    try:
        await storage.compact(await storage.current_revision())
        sub = cache.subscribe(after_revision=old - 1)
        with pytest.raises(CompactedError):
            await take(sub, 1)
        assert cache.subscriber_count == 0
    finally:
        await cache.stop()


async def test_slow_subscriber_is_cut_off_and_others_continue(storage: EtcdStorage, etcd_prefix: str) -> None:
    # The buffer must exceed what one etcd watch response can batch, or the fast readers could be cut off too.
    cache = await started(storage, f"{etcd_prefix}/", subscriber_buffer=100)
    try:
        slow = cache.subscribe(after_revision=cache.revision)
        fast = [cache.subscribe(after_revision=cache.revision) for _ in range(3)]
        readers = [asyncio.create_task(take(sub, 300, within=20)) for sub in fast]
        revisions = await write_many(storage, etcd_prefix, 300)
        for reader in readers:
            assert [e.revision for e in await reader] == revisions
        with pytest.raises(WatcherTooSlowError):
            await take(slow, 1)
        assert cache.subscriber_count == 3
        # The slow client re-subscribes from where it was and gets everything, from history.
        again = cache.subscribe(after_revision=slow.last_revision)
        assert [e.revision for e in await take(again, 300)] == revisions
    finally:
        await cache.stop()


class CompactingStorage(EtcdStorage):
    """EtcdStorage whose next watch fails with CompactedError once, as after an etcd restart plus compaction."""

    fail_next_watch = False

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        if self.fail_next_watch:
            self.fail_next_watch = False
            return self._compacted(start_revision)
        return super().watch(prefix, start_revision=start_revision)

    async def _compacted(self, start_revision: int) -> AsyncIterator[WatchEvent]:
        raise CompactedError(f"compacted past {start_revision}", start_revision)
        yield  # an async generator, like the real watch


async def test_cache_survives_compaction_of_its_own_watch(etcd_url: str, etcd_prefix: str) -> None:
    storage = CompactingStorage([etcd_url])
    await storage.connect()
    cache = WatchCache(storage, f"{etcd_prefix}/")
    storage.fail_next_watch = True
    await cache.start()
    try:
        doomed = cache.subscribe(after_revision=cache.revision)
        with pytest.raises(CompactedError):
            await take(doomed, 1)
        for _ in range(100):
            if cache.subscriber_count == 0 and storage.fail_next_watch is False:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # let the cache re-watch from the current revision
        fresh = cache.subscribe(after_revision=cache.revision)
        created = await storage.create(f"{etcd_prefix}/after", b"x")
        assert [e.revision for e in await take(fresh, 1)] == [created]
    finally:
        await cache.stop()
        await storage.close()


async def test_stop_ends_every_subscription(storage: EtcdStorage, etcd_prefix: str) -> None:
    cache = await started(storage, f"{etcd_prefix}/", history_size=2)
    await write_many(storage, etcd_prefix, 5)
    live = cache.subscribe(after_revision=cache.revision)
    catching_up = cache.subscribe(after_revision=cache.history_floor - 3)
    await cache.stop()
    assert [e async for e in live] == []
    async for _ in catching_up:  # may hold what it copied before the stop, then ends
        pass


async def test_thousand_subscribers_each_get_every_event(storage: EtcdStorage, etcd_prefix: str) -> None:
    cache = await started(storage, f"{etcd_prefix}/")
    events_per_run = 20
    latencies: list[float] = []
    sent_at: list[float] = []  # the i-th write's start time; events arrive in write order

    async def consume(sub: Subscription) -> None:
        for i in range(events_per_run):
            event = await anext(sub)
            latencies.append(time.perf_counter() - sent_at[i])
            assert (event.type, event.key) == ("PUT", f"{etcd_prefix}/k{i}")  # every event, in write order

    try:
        subs = [cache.subscribe(after_revision=cache.revision) for _ in range(1000)]
        consumers = [asyncio.create_task(consume(sub)) for sub in subs]
        for i in range(events_per_run):
            sent_at.append(time.perf_counter())
            await storage.create(f"{etcd_prefix}/k{i}", b"x" * 1500)
            await asyncio.sleep(0.02)
        await asyncio.wait_for(asyncio.gather(*consumers), 20)
        latencies.sort()
        p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
        print(f"1000 subscribers: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
        # Delivery latency is a bench figure (bench/bench_api.py's fan-out, target p99 < 200 ms), not a timed
        # assertion: here every subscriber must get every event, in order, within the generous wait above.
        assert len(latencies) == 1000 * events_per_run
    finally:
        await cache.stop()


class CountingStorage(EtcdStorage):
    """EtcdStorage that counts watches: the cache's own plus one per catch-up from before its history."""

    watches = 0

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        self.watches += 1
        return super().watch(prefix, start_revision=start_revision)


async def test_concurrent_writers_and_reconnecting_subscribers_see_the_committed_sequence(
        etcd_url: str, etcd_prefix: str) -> None:
    """Writers race on a few keys with compare-and-swap; every subscriber, including ones that drop and
    re-subscribe from their last revision (sometimes from before the small history), sees exactly the
    committed sequence."""
    storage = CountingStorage([etcd_url])
    await storage.connect()
    rng = random.Random(7)
    cache = await started(storage, f"{etcd_prefix}/", history_size=20)
    start = cache.revision
    committed: list[int] = []

    async def writer(worker: int) -> None:
        for i in range(40):
            key = f"{etcd_prefix}/k{rng.randrange(5)}"
            current = await storage.get(key)
            try:
                if current is None:
                    committed.append(await storage.create(key, f"{worker}-{i}".encode()))
                elif rng.random() < 0.2:
                    committed.append((await storage.delete(key, expected_revision=current.mod_revision))[1])
                else:
                    committed.append(await storage.update(key, f"{worker}-{i}".encode(),
                                                          expected_revision=current.mod_revision))
            except (ConflictError, KeyExistsError, KeyNotFoundError):
                pass  # lost a race with another writer: nothing committed

    async def subscriber(reconnect_every: int | None) -> list[WatchEvent]:
        seen: list[WatchEvent] = []
        sub = cache.subscribe(after_revision=start)
        deadline = time.monotonic() + 20
        while not (writers_done.is_set() and seen and seen[-1].revision == max(committed)):
            assert time.monotonic() < deadline, f"stuck after {len(seen)} events"
            try:
                event = await asyncio.wait_for(anext(sub), 0.2)
            except TimeoutError:
                continue  # idle: check whether the writers are done and everything arrived
            seen.append(event)
            if reconnect_every and len(seen) % reconnect_every == 0:
                sub.close()
                await asyncio.sleep(rng.random() * 0.05)  # fall behind so some resumes need etcd
                sub = cache.subscribe(after_revision=seen[-1].revision)
        sub.close()
        return seen

    writers_done = asyncio.Event()
    try:
        subscribers = [asyncio.create_task(subscriber(every)) for every in (None, None, 7, 13, 25)]
        await asyncio.gather(*(writer(w) for w in range(4)))
        writers_done.set()
        results = await asyncio.gather(*subscribers)
        direct = storage.watch(f"{etcd_prefix}/", start_revision=start + 1)
        truth = [await anext(direct) for _ in committed]
        await direct.aclose()  # type: ignore[attr-defined]
        assert [e.revision for e in truth] == sorted(committed)
        for seen in results:
            assert [(e.type, e.key, e.value, e.prev_value, e.revision) for e in seen] == \
                   [(e.type, e.key, e.value, e.prev_value, e.revision) for e in truth]
        assert storage.watches >= 3, "no re-subscription had to catch up from etcd: the test lost its point"
    finally:
        await cache.stop()
        await storage.close()


async def test_compactor_keeps_the_retention_window(storage: EtcdStorage, etcd_prefix: str) -> None:
    now = [1000.0]
    compactor = Compactor(storage, interval=60, retention=120, clock=lambda: now[0])
    first = await storage.create(f"{etcd_prefix}/a", b"1")
    assert await compactor.tick() is None  # sample at t=1000
    now[0] += 60
    second = await storage.create(f"{etcd_prefix}/b", b"2")
    assert await compactor.tick() is None  # sample at t=1060; nothing is 120 s old yet
    now[0] += 60
    compacted = await compactor.tick()     # t=1120: the t=1000 sample is due
    assert compacted is not None and first <= compacted < second
    with pytest.raises(CompactedError):
        await storage.list(f"{etcd_prefix}/", revision=first - 1)
    assert [kv.key for kv in (await storage.list(f"{etcd_prefix}/", revision=second)).items] == \
           [f"{etcd_prefix}/a", f"{etcd_prefix}/b"]


async def test_cache_rides_through_an_etcd_restart(etcd_prefix: str) -> None:
    """The cache's single watch resumes after etcd restarts on the same data: subscribers see every write."""
    with restartable_etcd("aiokube-etcd-cache-restart-") as etcd:
        storage = EtcdStorage([etcd.url], request_timeout=0.5)
        await storage.connect()
        cache = await started(storage, f"{etcd_prefix}/")
        try:
            subs = [cache.subscribe(after_revision=cache.revision) for _ in range(3)]
            committed = await write_many(storage, etcd_prefix, 5, tag="before")
            for sub in subs:
                assert [e.revision for e in await take(sub, 5)] == committed

            etcd.stop()
            etcd.start()
            for i in range(5):
                for _ in range(40):  # the channel reconnects within ~1 s
                    try:
                        committed.append(await storage.create(f"{etcd_prefix}/after-{i}", b"y"))
                        break
                    except StorageUnavailableError:
                        await asyncio.sleep(0.1)
            for sub in subs:
                assert [e.revision for e in await take(sub, 5, within=15)] == committed[5:]
            assert cache.revision == committed[-1]
        finally:
            await cache.stop()
            await storage.close()
