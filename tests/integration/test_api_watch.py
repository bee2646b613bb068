"""Watch streams: initial events, resume from a resourceVersion, selector transitions, bookmarks, timeouts,
410 on compacted history, one-row Tables."""

from __future__ import annotations

import asyncio
import functools
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from apiserver import registry
from apiserver.watch_cache import WatchCache

pytestmark = pytest.mark.etcd

CM = "/api/v1/namespaces/default/configmaps"
MERGE = {"content-type": "application/merge-patch+json"}


class Events:
    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines

    async def next(self, wait: float = 5.0) -> dict:
        while True:
            line = await asyncio.wait_for(self._lines.__anext__(), wait)
            if line.strip():
                return json.loads(line)


@asynccontextmanager
async def watching(api: httpx.AsyncClient, path: str, **params: str) -> AsyncIterator[Events]:
    async with api.stream("GET", path, params={"watch": "true", **params}, timeout=None) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        yield Events(response.aiter_lines())


async def test_initial_events_then_live(api: httpx.AsyncClient) -> None:
    await api.post(CM, json={"metadata": {"name": "a"}})
    async with watching(api, CM, resourceVersion="0") as events:
        first = await events.next()
        assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "a"
        assert first["object"]["kind"] == "ConfigMap"
        await api.post(CM, json={"metadata": {"name": "b"}})
        await api.patch(f"{CM}/b", json={"data": {"x": "1"}}, headers=MERGE)
        await api.delete(f"{CM}/b")
        seen = [await events.next() for _ in range(3)]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in seen] == [
        ("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "b")]
    revisions = [int(e["object"]["metadata"]["resourceVersion"]) for e in seen]
    assert revisions == sorted(revisions) and len(set(revisions)) == 3


async def test_resume_from_resource_version_and_watch_path(api: httpx.AsyncClient) -> None:
    start = (await api.get(CM)).json()["metadata"]["resourceVersion"]
    for name in ("x", "y"):
        await api.post(CM, json={"metadata": {"name": name}})
    async with api.stream("GET", f"/api/v1/watch/namespaces/default/configmaps?resourceVersion={start}",
                          timeout=None) as response:
        events = Events(response.aiter_lines())
        names = [(await events.next())["object"]["metadata"]["name"] for _ in range(2)]
    assert names == ["x", "y"]


async def test_namespace_scoping(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/namespaces", json={"metadata": {"name": "other"}})
    rv = (await api.get(CM)).json()["metadata"]["resourceVersion"]
    async with watching(api, CM, resourceVersion=rv) as events:
        await api.post("/api/v1/namespaces/other/configmaps", json={"metadata": {"name": "elsewhere"}})
        await api.post(CM, json={"metadata": {"name": "here"}})
        assert (await events.next())["object"]["metadata"]["name"] == "here"


async def test_selector_transitions(api: httpx.AsyncClient) -> None:
    await api.post(CM, json={"metadata": {"name": "t", "labels": {"app": "other"}}})
    rv = (await api.get(CM)).json()["metadata"]["resourceVersion"]
    async with watching(api, CM, resourceVersion=rv, labelSelector="app=web") as events:
        await api.patch(f"{CM}/t", json={"metadata": {"labels": {"app": "web"}}}, headers=MERGE)
        await api.patch(f"{CM}/t", json={"data": {"k": "v"}}, headers=MERGE)
        await api.patch(f"{CM}/t", json={"metadata": {"labels": {"app": "gone"}}}, headers=MERGE)
        await api.patch(f"{CM}/t", json={"data": {"k": "w"}}, headers=MERGE)  # outside: not seen
        await api.post(CM, json={"metadata": {"name": "u", "labels": {"app": "web"}}})
        got = [await events.next() for _ in range(4)]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [
        ("ADDED", "t"), ("MODIFIED", "t"), ("DELETED", "t"), ("ADDED", "u")]
    assert got[2]["object"]["metadata"]["labels"]["app"] == "gone"


async def test_bookmarks_and_timeout(api: httpx.AsyncClient) -> None:
    rv = (await api.get(CM)).json()["metadata"]["resourceVersion"]
    async with watching(api, CM, resourceVersion=rv, allowWatchBookmarks="true", timeoutSeconds="2") as events:
        bookmark = await events.next(wait=3)
        assert bookmark["type"] == "BOOKMARK"
        assert bookmark["object"]["kind"] == "ConfigMap"
        assert int(bookmark["object"]["metadata"]["resourceVersion"]) >= int(rv)
        with pytest.raises(StopAsyncIteration):  # the server ends the stream at timeoutSeconds
            while True:
                await events.next(wait=4)


async def test_compacted_resource_version_gives_410_event(api: httpx.AsyncClient, etcd_url: str) -> None:
    old = (await api.post(CM, json={"metadata": {"name": "c"}})).json()["metadata"]["resourceVersion"]
    for i in range(3):
        await api.patch(f"{CM}/c", json={"data": {"n": str(i)}}, headers=MERGE)
    from apiserver.storage.etcd import EtcdStorage

    storage = EtcdStorage([etcd_url])
    await storage.connect()
    try:
        await storage.compact(await storage.current_revision())
    finally:
        await storage.close()
    async with watching(api, CM, resourceVersion=str(int(old) - 1)) as events:
        error = await events.next()
        assert error["type"] == "ERROR"
        assert error["object"]["code"] == 410 and error["object"]["reason"] == "Expired"
        with pytest.raises(StopAsyncIteration):
            await events.next()


async def test_watch_tables(api: httpx.AsyncClient) -> None:
    await api.post(CM, json={"metadata": {"name": "a"}})
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    async with api.stream("GET", CM, params={"watch": "1", "resourceVersion": "0"}, headers={"accept": accept},
                          timeout=None) as response:
        events = Events(response.aiter_lines())
        first = await events.next()
        await api.post(CM, json={"metadata": {"name": "b"}})
        second = await events.next()
    assert first["object"]["kind"] == "Table" and first["object"]["columnDefinitions"]
    assert first["object"]["rows"][0]["cells"][0] == "a"
    assert second["type"] == "ADDED" and not second["object"]["columnDefinitions"]
    assert second["object"]["rows"][0]["object"]["metadata"]["name"] == "b"


async def test_many_watchers_see_the_same_ordered_stream(api: httpx.AsyncClient) -> None:
    rv = (await api.get(CM)).json()["metadata"]["resourceVersion"]
    async with watching(api, CM, resourceVersion=rv) as w1, watching(api, CM, resourceVersion=rv) as w2:
        for i in range(20):
            await api.post(CM, json={"metadata": {"name": f"n{i}"}})
        one = [(await w1.next())["object"]["metadata"]["name"] for _ in range(20)]
        two = [(await w2.next())["object"]["metadata"]["name"] for _ in range(20)]
    assert one == two == [f"n{i}" for i in range(20)]


async def test_legacy_watch_of_one_object(api: httpx.AsyncClient) -> None:
    rv = (await api.get(CM)).json()["metadata"]["resourceVersion"]
    async with api.stream("GET", f"/api/v1/watch/namespaces/default/configmaps/mine?resourceVersion={rv}",
                          timeout=None) as response:
        events = Events(response.aiter_lines())
        await api.post(CM, json={"metadata": {"name": "other"}})
        await api.post(CM, json={"metadata": {"name": "mine"}})
        event = await events.next()
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "mine"


async def test_send_initial_events_ends_with_a_marked_bookmark(api: httpx.AsyncClient) -> None:
    await api.post(CM, json={"metadata": {"name": "first"}})
    async with watching(api, CM, sendInitialEvents="true", resourceVersionMatch="NotOlderThan",
                        allowWatchBookmarks="true") as events:
        added = await events.next()
        marker = await events.next()
    assert added["type"] == "ADDED" and added["object"]["metadata"]["name"] == "first"
    assert marker["type"] == "BOOKMARK"
    assert marker["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_a_watcher_too_slow_to_keep_up_sees_its_stream_end_cleanly(
        api: httpx.AsyncClient, apiserver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Kubernetes closes an unresponsive watcher's stream; client-go and kubectl then re-watch from their last
    # resourceVersion, whereas an ERROR event (code 500) would surface as a failure. A small buffer and a
    # client that stops reading make this one fall behind quickly.
    monkeypatch.setattr(registry, "WatchCache", functools.partial(WatchCache, subscriber_buffer=10))
    rv = (await api.get(CM)).json()["metadata"]["resourceVersion"]
    host, port = apiserver.removeprefix("http://").split(":")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: it sets the TCP window
    slow.setblocking(False)
    await asyncio.get_running_loop().sock_connect(slow, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=slow, limit=1024)
    writer.write(f"GET {CM}?watch=1&resourceVersion={rv} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    writer.transport.pause_reading()  # the client stops reading: the server's writes back up
    payload = "x" * 50_000
    await asyncio.gather(*(api.post(CM, json={"metadata": {"name": f"big-{i}"}, "data": {"a": payload}})
                           for i in range(80)))
    writer.transport.resume_reading()
    received = await asyncio.wait_for(reader.read(-1), 20)  # until the server ends the stream and closes
    writer.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body.endswith(b"0\r\n\r\n")  # the chunked stream was ended properly...
    assert b'"ERROR"' not in body  # ...without an error event
    assert body.count(b'"type":"ADDED"') < 80  # and before the end: it fell behind
    async with watching(api, CM, resourceVersion=rv) as again:  # re-watching from its RV gets everything
        assert [(await again.next())["object"]["metadata"]["name"] for _ in range(80)][-1].startswith("big-")
