"""EtcdStorage against a real etcd: every verb with its preconditions, paging, compaction, watch, resume."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from apiserver.storage.etcd import EtcdStorage, grpc_target
from apiserver.storage.interface import (
    CompactedError,
    ConflictError,
    KeyExistsError,
    KeyNotFoundError,
    StorageUnavailableError,
    WatchEvent,
)
from tests.support.etcd import etcd_watcher_count, free_port, restartable_etcd

pytestmark = pytest.mark.etcd


async def take(events: AsyncIterator[WatchEvent], count: int, within: float = 5.0) -> list[WatchEvent]:
    async def collect() -> list[WatchEvent]:
        return [await anext(events) for _ in range(count)]
    return await asyncio.wait_for(collect(), within)


async def test_create_get_and_already_exists(storage: EtcdStorage, etcd_prefix: str) -> None:
    key = f"{etcd_prefix}/core/pods/default/web"
    revision = await storage.create(key, b'{"a":1}')
    got = await storage.get(key)
    assert got is not None
    assert (got.key, got.value, got.mod_revision, got.create_revision) == (key, b'{"a":1}', revision, revision)
    with pytest.raises(KeyExistsError):
        await storage.create(key, b"{}")
    assert await storage.get(f"{etcd_prefix}/core/pods/default/missing") is None
    assert await storage.current_revision() >= revision


async def test_update_is_compare_and_swap(storage: EtcdStorage, etcd_prefix: str) -> None:
    key = f"{etcd_prefix}/k"
    created = await storage.create(key, b"v1")
    updated = await storage.update(key, b"v2", expected_revision=created)
    assert updated > created
    with pytest.raises(ConflictError) as conflict:
        await storage.update(key, b"v3", expected_revision=created)
    assert conflict.value.current is not None
    assert (conflict.value.current.value, conflict.value.current.mod_revision) == (b"v2", updated)
    with pytest.raises(KeyNotFoundError):
        await storage.update(f"{etcd_prefix}/absent", b"x", expected_revision=created)
    got = await storage.get(key)
    assert got is not None and got.value == b"v2" and got.create_revision == created


async def test_delete_with_and_without_precondition(storage: EtcdStorage, etcd_prefix: str) -> None:
    key = f"{etcd_prefix}/k"
    created = await storage.create(key, b"v1")
    updated = await storage.update(key, b"v2", expected_revision=created)
    with pytest.raises(ConflictError) as conflict:
        await storage.delete(key, expected_revision=created)
    assert conflict.value.current is not None and conflict.value.current.mod_revision == updated
    previous, deleted_at = await storage.delete(key, expected_revision=updated)
    assert (previous.value, previous.mod_revision) == (b"v2", updated)
    assert deleted_at > updated
    assert await storage.get(key) is None
    with pytest.raises(KeyNotFoundError):
        await storage.delete(key)
    with pytest.raises(KeyNotFoundError):
        await storage.delete(key, expected_revision=updated)

    other = f"{etcd_prefix}/other"
    await storage.create(other, b"x")
    previous, _ = await storage.delete(other)  # no precondition: deletes whatever is there
    assert previous.value == b"x"


async def test_list_paging_limit_start_after_remaining(storage: EtcdStorage, etcd_prefix: str) -> None:
    prefix = f"{etcd_prefix}/core/pods/"
    keys = [f"{prefix}ns/pod-{i:02d}" for i in range(7)]
    for key in keys:
        await storage.create(key, key.encode())
    await storage.create(f"{etcd_prefix}/core/podsx/not-under-prefix", b"x")

    everything = await storage.list(prefix)
    assert [kv.key for kv in everything.items] == keys
    assert (everything.more, everything.remaining) == (False, 0)

    seen: list[str] = []
    page = await storage.list(prefix, limit=3)
    pinned = page.revision
    remainders = []
    while True:
        seen += [kv.key for kv in page.items]
        remainders.append((page.more, page.remaining))
        if not page.more:
            break
        page = await storage.list(prefix, limit=3, start_after=page.items[-1].key, revision=pinned)
        assert page.revision == pinned
    assert seen == keys
    assert remainders == [(True, 4), (True, 1), (False, 0)]

    # An exact fit is not "more".
    exact = await storage.list(prefix, limit=7)
    assert (len(exact.items), exact.more, exact.remaining) == (7, False, 0)


async def test_list_at_revision_sees_the_past(storage: EtcdStorage, etcd_prefix: str) -> None:
    key = f"{etcd_prefix}/k"
    created = await storage.create(key, b"old")
    await storage.update(key, b"new", expected_revision=created)
    await storage.create(f"{etcd_prefix}/later", b"x")
    past = await storage.list(f"{etcd_prefix}/", revision=created)
    assert [(kv.key, kv.value) for kv in past.items] == [(key, b"old")]
    assert past.revision == created


async def test_compaction_makes_old_revisions_expire(storage: EtcdStorage, etcd_prefix: str) -> None:
    key = f"{etcd_prefix}/k"
    first = await storage.create(key, b"1")
    second = await storage.update(key, b"2", expected_revision=first)
    await storage.compact(second)
    with pytest.raises(CompactedError) as too_old:
        await storage.list(f"{etcd_prefix}/", revision=first)
    assert too_old.value.compact_revision >= second  # >=: other tests share this etcd and may compact too
    with pytest.raises(CompactedError) as expired:
        await take(storage.watch(f"{etcd_prefix}/", start_revision=first), 1)
    assert expired.value.compact_revision >= second
    # The compacted revision itself is still readable and watchable.
    at_second = await storage.list(f"{etcd_prefix}/", revision=second)
    assert [kv.value for kv in at_second.items] == [b"2"]
    [event] = await take(storage.watch(f"{etcd_prefix}/", start_revision=second), 1)
    assert event.revision == second


async def test_watch_order_and_previous_values(storage: EtcdStorage, etcd_prefix: str) -> None:
    start = await storage.current_revision() + 1
    watch = storage.watch(f"{etcd_prefix}/", start_revision=start)
    a, b = f"{etcd_prefix}/a", f"{etcd_prefix}/b"
    r1 = await storage.create(a, b"a1")
    r2 = await storage.create(b, b"b1")
    r3 = await storage.update(a, b"a2", expected_revision=r1)
    _, r4 = await storage.delete(b)
    await storage.create(f"{etcd_prefix}x/outside", b"x")  # a sibling prefix must not leak in
    r5 = await storage.create(f"{etcd_prefix}/c", b"c1")
    events = await take(watch, 5)
    await watch.aclose()  # type: ignore[attr-defined]
    assert [(e.type, e.key, e.value, e.prev_value, e.revision) for e in events] == [
        ("PUT", a, b"a1", None, r1),
        ("PUT", b, b"b1", None, r2),
        ("PUT", a, b"a2", b"a1", r3),
        ("DELETE", b, None, b"b1", r4),
        ("PUT", f"{etcd_prefix}/c", b"c1", None, r5),
    ]
    assert events[2].create_revision == r1


async def test_watch_replays_history_then_goes_live(storage: EtcdStorage, etcd_prefix: str) -> None:
    first = await storage.create(f"{etcd_prefix}/1", b"1")
    await storage.create(f"{etcd_prefix}/2", b"2")
    watch = storage.watch(f"{etcd_prefix}/", start_revision=first)
    replayed = await take(watch, 2)
    live = await storage.create(f"{etcd_prefix}/3", b"3")
    [event] = await take(watch, 1)
    await watch.aclose()  # type: ignore[attr-defined]
    assert [e.key for e in replayed] == [f"{etcd_prefix}/1", f"{etcd_prefix}/2"]
    assert event.revision == live


async def test_closing_a_watch_cancels_it_in_etcd(storage: EtcdStorage, etcd_prefix: str,
                                                  etcd_url: str) -> None:
    before = etcd_watcher_count(etcd_url)
    created = await storage.create(f"{etcd_prefix}/k", b"x")
    watches = [storage.watch(f"{etcd_prefix}/", start_revision=created) for _ in range(3)]
    for watch in watches:
        await take(watch, 1)  # opens the stream: the first event is the replayed create
    assert etcd_watcher_count(etcd_url) >= before + 3
    for watch in watches:
        await watch.aclose()  # type: ignore[attr-defined]
    for _ in range(50):
        if etcd_watcher_count(etcd_url) <= before:
            break
        await asyncio.sleep(0.05)
    assert etcd_watcher_count(etcd_url) <= before


def test_grpc_target_lists_every_ip_endpoint() -> None:
    assert grpc_target(["http://127.0.0.1:2379"]) == ("127.0.0.1", 2379)
    assert grpc_target(["http://10.0.0.1:1", "http://10.0.0.2:2"]) == ("ipv4:10.0.0.1:1,10.0.0.2", 2)
    with pytest.raises(ValueError):
        grpc_target(["https://127.0.0.1:2379"])


async def test_watch_resumes_after_etcd_restart_without_gap_or_duplicate() -> None:
    """Writes before, during (refused) and after an etcd restart: the one watch sees each committed write once."""
    with restartable_etcd("aiokube-etcd-restart-") as etcd:
        storage = EtcdStorage([etcd.url], request_timeout=0.5, watch_reconnect_timeout=30)
        try:
            await storage.connect()
            start = await storage.current_revision() + 1
            watch = storage.watch("/restart/", start_revision=start)
            committed = [await storage.create(f"/restart/before-{i}", b"x") for i in range(5)]
            assert [e.revision for e in await take(watch, 5)] == committed

            etcd.stop()
            with pytest.raises(StorageUnavailableError):
                await storage.get("/restart/before-0")
            etcd.start()

            for i in range(5):
                for _ in range(40):  # the channel reconnects within ~1 s
                    try:
                        committed.append(await storage.create(f"/restart/after-{i}", b"y"))
                        break
                    except StorageUnavailableError:
                        await asyncio.sleep(0.1)
            resumed = await take(watch, 5, within=15)
            assert [e.revision for e in resumed] == committed[5:]
            assert [e.key for e in resumed] == [f"/restart/after-{i}" for i in range(5)]
            await watch.aclose()  # type: ignore[attr-defined]
        finally:
            await storage.close()


async def test_unreachable_etcd_is_storage_unavailable() -> None:
    storage = EtcdStorage([f"http://127.0.0.1:{free_port()}"], request_timeout=0.3)
    await storage.connect()
    try:
        with pytest.raises(StorageUnavailableError):
            await storage.list("/x/")
        with pytest.raises(StorageUnavailableError):
            await storage.create("/x/a", b"1")
    finally:
        await storage.close()
