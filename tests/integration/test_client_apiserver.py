"""aiokube.client against the real API server on real etcd: CRUD and errors, informer, leader election,
event aggregation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from aiokube.api.errors import ApiError
from aiokube.client import ApiClient, EventRecorder, Informer, LeaderElector

pytestmark = pytest.mark.etcd


@pytest.fixture
async def namespace(client: ApiClient) -> str:
    name = f"client-{uuid.uuid4().hex[:8]}"
    await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def configmap(name: str, namespace: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace,
                                                                 "labels": {"app": "web"}}, "data": data}


async def eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_crud_conflict_patch_list_delete(client: ApiClient, namespace: str) -> None:
    created = await client.create("configmaps", configmap("c1", namespace, a="1"))
    assert created["metadata"]["resourceVersion"]
    fetched = await client.get("configmaps", "c1", namespace)
    assert fetched["data"] == {"a": "1"}
    fetched["data"]["a"] = "2"
    updated = await client.update("configmaps", fetched)
    with pytest.raises(ApiError) as info:
        await client.update("configmaps", fetched)  # stale resourceVersion now
    assert info.value.code == 409
    patched = await client.patch("configmaps", "c1", {"data": {"b": "3"}}, namespace)
    assert patched["data"] == {"a": "2", "b": "3"}
    assert int(patched["metadata"]["resourceVersion"]) > int(updated["metadata"]["resourceVersion"])
    listed = await client.list("configmaps", namespace, label_selector="app=web")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["c1"]
    with pytest.raises(ApiError) as info:
        await client.create("configmaps", configmap("c1", namespace))
    assert (info.value.code, info.value.reason) == (409, "AlreadyExists")
    await client.delete("configmaps", "c1", namespace)
    with pytest.raises(ApiError) as info:
        await client.get("configmaps", "c1", namespace)
    assert (info.value.code, info.value.reason) == (404, "NotFound")


async def test_informer_follows_the_server(client: ApiClient, namespace: str) -> None:
    await client.create("configmaps", configmap("before", namespace))
    informer = Informer(client, "configmaps", namespace)
    seen: list[tuple[str, str]] = []
    informer.add_handler(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                         on_update=lambda old, new: seen.append(("update", new["metadata"]["name"])),
                         on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.wait_synced(), 10)
        assert informer.store.keys() == [f"{namespace}/before"]
        await client.create("configmaps", configmap("after", namespace))
        await client.patch("configmaps", "before", {"data": {"x": "1"}}, namespace)
        await client.delete("configmaps", "after", namespace)
        await eventually(lambda: len(seen) == 4)
        assert seen == [("add", "before"), ("add", "after"), ("update", "before"), ("delete", "after")]
        assert informer.store.get(f"{namespace}/before")["data"] == {"x": "1"}  # type: ignore[index]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_leader_election_hands_over_on_release(client: ApiClient, namespace: str) -> None:
    leaders: list[str] = []

    def candidate(identity: str) -> asyncio.Task[None]:
        elector = LeaderElector(client, namespace=namespace, name="lock", identity=identity,
                                lease_duration=3.0, renew_deadline=2.0, retry_period=0.2)

        async def lead() -> None:
            leaders.append(identity)
            await asyncio.Event().wait()

        return asyncio.create_task(elector.run(lead))

    first = candidate("a")
    await eventually(lambda: leaders == ["a"])
    second = candidate("b")
    await asyncio.sleep(0.6)
    assert leaders == ["a"]
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await eventually(lambda: leaders == ["a", "b"], within=3.0)
    lease = await client.get("leases", "lock", namespace)
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)


async def test_events_are_aggregated(client: ApiClient, namespace: str) -> None:
    cm = await client.create("configmaps", configmap("subject", namespace))
    recorder = EventRecorder(client, "client-test")
    for _ in range(3):
        await recorder.event(cm, "Warning", "Broken", "something is broken")
    events = (await client.list("events", namespace))["items"]
    assert len(events) == 1
    assert events[0]["count"] == 3
    assert events[0]["involvedObject"]["uid"] == cm["metadata"]["uid"]
