"""Garbage collector races, replayed deterministically with the fake client and hand-fed caches.

Both tests reproduce the way an orphan deletion used to lose its pods: the GC's pod cache lagging behind the
API server, either missing the pods (so they were never orphaned) or still holding their pre-orphan version
(so they looked like dependents of a vanished owner).
"""

from __future__ import annotations

from typing import Any

from controllers.garbagecollector import ORPHAN, GarbageCollector
from controllers.testing import FakeClient, FakeInformers, FakeQueue

NS = "default"


def replicaset(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}}}


def pod_of(owner: dict[str, Any], name: str) -> dict[str, Any]:
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": "web"}, "ownerReferences": [ref]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def build() -> tuple[FakeClient, FakeInformers, GarbageCollector]:
    client = FakeClient()
    informers = FakeInformers()
    gc = GarbageCollector(client=client, informers=informers)
    gc.watch(FakeQueue())
    return client, informers, gc


async def mark_deleting_with_orphan(client: FakeClient, rs: dict[str, Any]) -> None:
    await client.patch("replicasets", rs["metadata"]["name"],
                       {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": [ORPHAN]}},
                       namespace=NS)


async def test_orphaning_finds_dependents_the_pod_cache_has_not_seen_yet() -> None:
    client, informers, gc = build()
    rs = client.seed("replicasets", replicaset("web"))
    informers.sync(client)
    for name in ("web-a", "web-b"):  # created, but the GC's pod watch has not delivered them yet
        client.seed("pods", pod_of(rs, name))
    await mark_deleting_with_orphan(client, rs)
    informers.get("replicasets").apply(client.all("replicasets"))

    await gc.reconcile(f"replicasets|{NS}/web")

    pods = client.all("pods")
    assert len(pods) == 2
    assert all(not p["metadata"].get("ownerReferences") for p in pods)
    [owner] = client.all("replicasets")
    assert not owner["metadata"].get("finalizers")  # the API server would now remove the ReplicaSet

    # The owner vanishes, then the pod watch catches up: nothing may be collected.
    await client.delete("replicasets", "web", namespace=NS)
    informers.sync(client)
    for name in ("web-a", "web-b"):
        await gc.reconcile(f"pods|{NS}/{name}")
    assert sorted(p["metadata"]["name"] for p in client.all("pods")) == ["web-a", "web-b"]
    assert client.count("delete", "pods") == 0


async def test_a_stale_cached_dependent_is_never_deleted() -> None:
    client, informers, gc = build()
    rs = client.seed("replicasets", replicaset("web"))
    client.seed("pods", pod_of(rs, "web-a"))
    informers.sync(client)  # the cache holds the pod with its reference to the ReplicaSet
    # Meanwhile (not yet seen by the cache): the orphaning stripped the reference, the owner went away.
    await client.patch("pods", "web-a", {"metadata": {"ownerReferences": None}}, namespace=NS)
    await client.delete("replicasets", "web", namespace=NS)
    informers.get("replicasets").apply(client.all("replicasets"))

    await gc.reconcile(f"pods|{NS}/web-a")  # judged on the stale copy: owner gone → delete, refused by 409

    assert [p["metadata"]["name"] for p in client.all("pods")] == ["web-a"]
    informers.sync(client)
    await gc.reconcile(f"pods|{NS}/web-a")  # the fresh version has no owner: nothing to do
    assert [p["metadata"]["name"] for p in client.all("pods")] == ["web-a"]


async def test_a_dependent_of_a_vanished_owner_is_still_collected() -> None:
    client, informers, gc = build()
    rs = client.seed("replicasets", replicaset("web"))
    client.seed("pods", pod_of(rs, "web-a"))
    await client.delete("replicasets", "web", namespace=NS)
    informers.sync(client)

    await gc.reconcile(f"pods|{NS}/web-a")

    assert client.all("pods") == []
