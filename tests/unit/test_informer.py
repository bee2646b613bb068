"""Informer against the in-memory fake API: paged list, watch from the list RV, resume from the last RV
(bookmarks included), relist with a diff on 410, handler order and isolation, resync, backoff, indexes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiokube.api.resources import lookup
from aiokube.api.types import Obj
from aiokube.client import ApiClient, Informer, RetryPolicy, node_name_index, owner_uid_index
from aiokube.client.fake_api import FakeApiServer
from aiokube.client.testing import FakeClock

PODS = lookup("pods")


def pod(name: str, node: str = "", namespace: str = "default", **labels: str) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": {"nodeName": node}}


async def eventually(predicate: Callable[[], bool], within: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def attach(self, informer: Informer) -> None:
        informer.add_handler(on_add=lambda o: self.events.append(("add", o["metadata"]["name"])),
                             on_update=lambda old, new: self.events.append(("update", new["metadata"]["name"])),
                             on_delete=lambda o: self.events.append(("delete", o["metadata"]["name"])))


@asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.wait_synced(), 2)
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def setup(clock: FakeClock | None = None, **kwargs: object) -> tuple[FakeApiServer, Informer]:
    api = FakeApiServer()
    client = ApiClient("http://fake", transport=api.transport(), retry=RetryPolicy(max_attempts=1))
    return api, Informer(client, "pods", clock=clock or FakeClock(), watch_timeout_seconds=60,
                         **kwargs)  # type: ignore[arg-type]


def watch_requests(api: FakeApiServer) -> list[dict[str, str]]:
    return [dict(r.url.params) for r in api.requests if r.url.params.get("watch") == "true"]


async def test_paged_list_then_watch_from_the_list_resource_version() -> None:
    api, informer = setup()
    for i in range(1203):
        api.put(PODS, pod(f"p{i:04d}"))
    recorder = Recorder()
    recorder.attach(informer)
    async with running(informer):
        assert informer.has_synced
        assert len(informer.store) == 1203
        assert len(recorder.events) == 1203
        lists = [dict(r.url.params) for r in api.requests if "watch" not in r.url.params]
        assert [p.get("limit") for p in lists] == ["500", "500", "500"]
        assert [p.get("continue") for p in lists] == [None, "500", "1000"]
        await eventually(lambda: api.open_watches == 1)
        (params,) = watch_requests(api)
        assert params["resourceVersion"] == str(api.revision)
        assert params["allowWatchBookmarks"] == "true"


async def test_handlers_see_events_in_order_and_a_failing_handler_is_isolated() -> None:
    api, informer = setup()
    recorder = Recorder()

    def explode(obj: Obj) -> None:
        raise RuntimeError("handler bug")

    informer.add_handler(on_add=explode, on_delete=explode)
    recorder.attach(informer)
    async with running(informer):
        await eventually(lambda: api.open_watches == 1)
        api.put(PODS, pod("a"))
        api.put(PODS, pod("a", node="n1"))
        api.put(PODS, pod("b"))
        api.remove(PODS, "default", "a")
        await eventually(lambda: len(recorder.events) == 4)
        assert recorder.events == [("add", "a"), ("update", "a"), ("add", "b"), ("delete", "a")]
        assert informer.store.get("default/a") is None
        assert informer.store.get("default/b") is not None


async def test_delete_handler_gets_the_last_known_object() -> None:
    api, informer = setup()
    deleted: list[Obj] = []
    informer.add_handler(on_delete=deleted.append)
    api.put(PODS, pod("a", node="n7"))
    async with running(informer):
        await eventually(lambda: api.open_watches == 1)
        api.remove(PODS, "default", "a")
        await eventually(lambda: len(deleted) == 1)
    assert deleted[0]["spec"]["nodeName"] == "n7"


async def test_rewatch_resumes_from_the_last_resource_version_including_bookmarks() -> None:
    api, informer = setup()
    recorder = Recorder()
    recorder.attach(informer)
    async with running(informer):
        await eventually(lambda: api.open_watches == 1)
        api.put(PODS, pod("a"))
        await eventually(lambda: recorder.events == [("add", "a")])
        seen_rv = informer.last_resource_version
        api.close_watches()
        await eventually(lambda: len(watch_requests(api)) == 2)
        assert watch_requests(api)[1]["resourceVersion"] == seen_rv

        # Changes to another resource move the revision on; a bookmark tells the informer it is caught up.
        api.put(lookup("configmaps"), {"metadata": {"name": "c", "namespace": "default"}})
        await eventually(lambda: api.open_watches == 1)
        api.send_bookmark(PODS)
        await eventually(lambda: informer.last_resource_version == str(api.revision))
        api.close_watches()
        await eventually(lambda: len(watch_requests(api)) == 3)
        assert watch_requests(api)[2]["resourceVersion"] == str(api.revision)
    assert recorder.events == [("add", "a")]  # no relist, no replays


async def test_410_relists_and_emits_the_difference() -> None:
    clock = FakeClock()
    api, informer = setup(clock)
    for name in ("keep", "change", "gone"):
        api.put(PODS, pod(name))
    recorder = Recorder()
    recorder.attach(informer)
    async with running(informer):
        await eventually(lambda: api.open_watches == 1)
        recorder.events.clear()
        # While no watch is open, the world changes and history is compacted away.
        api.close_watches()
        api.put(PODS, pod("change", node="n1"))
        api.remove(PODS, "default", "gone")
        api.put(PODS, pod("new"))
        api.compact()
        # The empty, instantly closed watch counts as a "very short watch": the informer backs off first.
        await eventually(lambda: clock.sleepers == 1)
        await clock.advance(2.0)
        await eventually(lambda: len(recorder.events) == 3)
        assert sorted(recorder.events) == [("add", "new"), ("delete", "gone"), ("update", "change")]
        lists = [r for r in api.requests if "watch" not in r.url.params]
        assert len(lists) == 2
        assert informer.store.get("default/change")["spec"]["nodeName"] == "n1"  # type: ignore[index]
        await eventually(lambda: api.open_watches == 1)
        assert watch_requests(api)[-1]["resourceVersion"] == str(api.revision)


async def test_list_failure_backs_off_on_the_clock_then_recovers() -> None:
    clock = FakeClock()
    api, informer = setup(clock)
    api.put(PODS, pod("a"))
    api.fail_next("GET", 500, times=2)
    task = asyncio.create_task(informer.run())
    try:
        await eventually(lambda: clock.sleepers == 1)
        first = clock.next_deadline()
        assert first is not None and 0.8 <= first <= 1.2
        await clock.advance(first)
        await eventually(lambda: clock.sleepers == 1)
        second = clock.next_deadline()
        assert second is not None and 1.6 <= second - clock.time <= 2.4  # doubled
        assert not informer.has_synced
        await clock.advance(second - clock.time)
        await asyncio.wait_for(informer.wait_synced(), 2)
        assert informer.store.get("default/a") is not None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_empty_watch_closed_at_once_backs_off_instead_of_spinning() -> None:
    clock = FakeClock()
    api, informer = setup(clock)
    async with running(informer):
        await eventually(lambda: api.open_watches == 1)
        api.close_watches()
        await eventually(lambda: clock.sleepers == 1)
        assert len(watch_requests(api)) == 1
        await clock.advance(1.3)
        await eventually(lambda: len(watch_requests(api)) == 2)


async def test_resync_replays_the_store_as_updates_without_relisting() -> None:
    clock = FakeClock()
    api, informer = setup(clock, resync_period=30.0)
    api.put(PODS, pod("a"))
    api.put(PODS, pod("b"))
    updates: list[tuple[str, bool]] = []
    informer.add_handler(on_update=lambda old, new: updates.append((new["metadata"]["name"], old is new)))
    async with running(informer):
        await eventually(lambda: clock.sleepers == 1)
        await clock.advance(29)
        assert updates == []
        await clock.advance(1)
        assert sorted(updates) == [("a", True), ("b", True)]
        lists = [r for r in api.requests if "watch" not in r.url.params]
        assert len(lists) == 1


async def test_indexes_and_late_handlers() -> None:
    api, informer = setup()
    informer.add_index("node", node_name_index)
    informer.add_index("owner", owner_uid_index)
    api.put(PODS, pod("a", node="n1"))
    api.put(PODS, pod("b", node="n2"))
    owned = pod("c", node="n1")
    owned["metadata"]["ownerReferences"] = [{"uid": "rs-1", "controller": True, "kind": "ReplicaSet", "name": "r"}]
    api.put(PODS, owned)
    async with running(informer):
        assert [p["metadata"]["name"] for p in informer.store.by_index("node", "n1")] == ["a", "c"]
        assert [p["metadata"]["name"] for p in informer.store.by_index("owner", "rs-1")] == ["c"]
        await eventually(lambda: api.open_watches == 1)
        api.put(PODS, pod("a", node="n2"))  # moves between index values
        await eventually(lambda: len(informer.store.by_index("node", "n2")) == 2)
        assert [p["metadata"]["name"] for p in informer.store.by_index("node", "n1")] == ["c"]
        late: list[str] = []
        informer.add_handler(on_add=lambda o: late.append(o["metadata"]["name"]))
        assert sorted(late) == ["a", "b", "c"]


async def test_namespace_and_label_selector_are_passed_to_list_and_watch() -> None:
    api = FakeApiServer()
    client = ApiClient("http://fake", transport=api.transport(), retry=RetryPolicy(max_attempts=1))
    informer = Informer(client, "pods", "prod", label_selector="app=web", watch_timeout_seconds=60)
    api.put(PODS, pod("match", namespace="prod", app="web"))
    api.put(PODS, pod("other-label", namespace="prod", app="db"))
    api.put(PODS, pod("other-ns", namespace="dev", app="web"))
    async with running(informer):
        assert informer.store.keys() == ["prod/match"]
        await eventually(lambda: api.open_watches == 1)
    for request in api.requests:
        assert request.url.path == "/api/v1/namespaces/prod/pods"
        assert request.url.params["labelSelector"] == "app=web"
