"""HTTP-level watch consistency: concurrent writers, watchers that reconnect mid-stream from the last
resourceVersion they saw; every watcher must see exactly the sequence etcd committed (no gap, duplicate or
reordering), whatever its reconnect pattern and whether it asks for bookmarks."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest

from apiserver.storage.etcd import EtcdStorage

pytestmark = pytest.mark.etcd

NS = "consistency"
CM = f"/api/v1/namespaces/{NS}/configmaps"
MERGE = {"content-type": "application/merge-patch+json"}
Event = tuple[str, int, bool]  # (name, revision, deleted)


async def _write(api: httpx.AsyncClient, rng: random.Random, writer: int, operations: int) -> None:
    for i in range(operations):
        name, op = f"k{rng.randrange(6)}", rng.random()
        if op < 0.4:
            answer = await api.post(CM, json={"metadata": {"name": name}, "data": {"w": f"{writer}-{i}"}})
        elif op < 0.8:
            answer = await api.patch(f"{CM}/{name}", json={"data": {"w": f"{writer}-{i}"}}, headers=MERGE)
        else:
            answer = await api.delete(f"{CM}/{name}")
        assert answer.status_code in (200, 201, 404, 409), answer.text


async def _watch(api: httpx.AsyncClient, start: str, final: asyncio.Future[int], reconnect_every: int | None,
                 bookmarks: bool) -> tuple[list[Event], int]:
    """Watch until the last committed revision (known once the writers are done) has been seen."""
    seen: list[Event] = []
    rv, reconnects = start, 0
    while not (final.done() and int(rv) >= final.result()):
        params = {"watch": "1", "resourceVersion": rv, **({"allowWatchBookmarks": "true"} if bookmarks else {})}
        count = 0
        try:
            async with api.stream("GET", CM, params=params, timeout=httpx.Timeout(10, read=1)) as stream:
                assert stream.status_code == 200
                async for line in stream.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    assert event["type"] != "ERROR", event
                    rv = event["object"]["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        seen.append((event["object"]["metadata"]["name"], int(rv), event["type"] == "DELETED"))
                        count += 1
                    if (reconnect_every and count >= reconnect_every) or (
                            final.done() and int(rv) >= final.result()):
                        break  # drop the connection mid-stream and resume from the last resourceVersion
        except httpx.ReadTimeout:
            pass  # nothing new for a second: look at the final revision again
        reconnects += 1
    return seen, reconnects


async def _committed(etcd_url: str, etcd_prefix: str, start: int) -> list[Event]:
    store = EtcdStorage([etcd_url])
    await store.connect()
    try:
        end = await store.current_revision()
        truth: list[Event] = []
        events = store.watch(f"{etcd_prefix}/core/configmaps/{NS}/", start_revision=start + 1)
        while not truth or truth[-1][1] < end:
            try:
                event = await asyncio.wait_for(anext(events), 1)
            except TimeoutError:
                break
            truth.append((event.key.rsplit("/", 1)[1], event.revision, event.type == "DELETE"))
        return [event for event in truth if event[1] <= end]
    finally:
        await store.close()


async def test_reconnecting_watchers_see_exactly_the_committed_sequence(apiserver: str, etcd_url: str,
                                                                       etcd_prefix: str) -> None:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=apiserver, timeout=10, limits=limits) as api:
        await api.post("/api/v1/namespaces", json={"metadata": {"name": NS}})
        start = (await api.get(CM)).json()["metadata"]["resourceVersion"]
        final: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        patterns = [(None, False), (None, True), (1, False), (3, True), (7, False)]
        watchers = [asyncio.create_task(_watch(api, start, final, every, bookmarks)) for every, bookmarks in patterns]
        await asyncio.sleep(0.2)
        rng = random.Random(7)
        await asyncio.gather(*(_write(api, rng, writer, 25) for writer in range(6)))
        truth = await _committed(etcd_url, etcd_prefix, int(start))
        final.set_result(truth[-1][1])
        results = await asyncio.wait_for(asyncio.gather(*watchers), 20)
    assert len(truth) > 50
    for (every, _), (seen, reconnects) in zip(patterns, results, strict=True):
        assert seen == truth, f"watcher reconnecting every {every} events diverged"
        if every == 1:
            assert reconnects >= len(truth)
