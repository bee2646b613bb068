"""Garbage collector (background, foreground, orphan), namespace deletion and the default ServiceAccount,
against real etcd + API server with the controller-manager in-process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiokube.api.errors import ApiError
from aiokube.client import ApiClient
from controllers.manager import ManagerOptions
from controllers.testing import eventually, running_manager

pytestmark = pytest.mark.etcd


@pytest.fixture
async def manager(client: ApiClient) -> AsyncIterator[Any]:
    options = ManagerOptions(leader_elect=False, controllers=["replicaset", "garbagecollector", "namespace",
                                                              "serviceaccount"])
    async with running_manager(client, options) as mgr:
        yield mgr


def replicaset(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}}


async def pod_count(client: ApiClient, namespace: str, app: str) -> int:
    return len((await client.list("pods", namespace=namespace, label_selector=f"app={app}"))["items"])


async def gone(client: ApiClient, resource: str, name: str, namespace: str | None) -> bool:
    try:
        await client.get(resource, name, namespace=namespace)
    except ApiError as err:
        return err.code == 404
    return False


async def with_pods(client: ApiClient, namespace: str, name: str, n: int) -> None:
    await client.create("replicasets", replicaset(name, n), namespace=namespace)

    async def ready() -> bool:
        return await pod_count(client, namespace, name) == n

    await eventually(ready)


async def test_background_deletion_removes_dependents(client: ApiClient, namespace: str, manager: Any) -> None:
    await with_pods(client, namespace, "bg", 3)
    await client.delete("replicasets", "bg", namespace=namespace, propagation_policy="Background")

    async def no_pods() -> bool:
        return await pod_count(client, namespace, "bg") == 0

    await eventually(no_pods)


async def test_dependent_of_never_existing_owner_is_collected(client: ApiClient, namespace: str,
                                                               manager: Any) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "child", "ownerReferences": [
              {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": str(uuid.uuid4())}]}}
    await client.create("configmaps", cm, namespace=namespace)
    await eventually(lambda: gone(client, "configmaps", "child", namespace))


async def test_foreground_deletion_waits_for_dependents(client: ApiClient, namespace: str, manager: Any) -> None:
    await with_pods(client, namespace, "fg", 2)
    await client.delete("replicasets", "fg", namespace=namespace, propagation_policy="Foreground")
    # the owner stays (with its finalizer) until the dependents are gone, then goes itself
    await eventually(lambda: gone(client, "replicasets", "fg", namespace))
    assert await pod_count(client, namespace, "fg") == 0


async def test_foreground_owner_stays_while_a_blocking_dependent_remains(client: ApiClient, namespace: str,
                                                                          manager: Any) -> None:
    owner = await client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": "fg-owner"}}, namespace=namespace)
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "fg-owner", "uid": owner["metadata"]["uid"],
           "blockOwnerDeletion": True}
    # The dependent holds a finalizer of its own, so it lingers (being deleted) until the test lets it go.
    await client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "fg-dep", "ownerReferences": [ref], "finalizers": ["example.com/hold"]}}, namespace=namespace)
    await client.delete("configmaps", "fg-owner", namespace=namespace, propagation_policy="Foreground")

    async def dependent_being_deleted() -> bool:
        dep = await client.get("configmaps", "fg-dep", namespace=namespace)
        return bool(dep["metadata"].get("deletionTimestamp"))

    await eventually(dependent_being_deleted)
    await asyncio.sleep(0.5)  # time for a wrong early release of the owner to happen
    held = await client.get("configmaps", "fg-owner", namespace=namespace)
    assert held["metadata"].get("deletionTimestamp")
    assert "foregroundDeletion" in held["metadata"].get("finalizers", [])
    await client.patch("configmaps", "fg-dep", {"metadata": {"finalizers": None}}, namespace=namespace)
    await eventually(lambda: gone(client, "configmaps", "fg-owner", namespace))
    assert await gone(client, "configmaps", "fg-dep", namespace)


async def test_orphan_deletion_keeps_dependents(client: ApiClient, namespace: str, manager: Any) -> None:
    await with_pods(client, namespace, "or", 2)
    await client.delete("replicasets", "or", namespace=namespace, propagation_policy="Orphan")
    await eventually(lambda: gone(client, "replicasets", "or", namespace))
    pods = (await client.list("pods", namespace=namespace, label_selector="app=or"))["items"]
    assert len(pods) == 2
    assert all(not p["metadata"].get("ownerReferences") for p in pods)
    await asyncio.sleep(0.3)
    assert await pod_count(client, namespace, "or") == 2  # nobody collects orphans


async def test_namespace_deletion_empties_and_removes_it(client: ApiClient, namespace: str, manager: Any) -> None:
    async def default_sa() -> bool:
        return not await gone(client, "serviceaccounts", "default", namespace)

    await eventually(default_sa)
    await with_pods(client, namespace, "ns", 2)
    await client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}},
                        namespace=namespace)
    await client.delete("namespaces", namespace)
    await eventually(lambda: gone(client, "namespaces", namespace, None), within=15)
    for resource in ("pods", "replicasets", "configmaps", "serviceaccounts"):
        assert (await client.list(resource, namespace=namespace))["items"] == []


async def test_orphan_deletion_right_after_creating_dependents(client: ApiClient, namespace: str,
                                                              manager: Any) -> None:
    """No pause between creating dependents and orphaning their owner: the GC's caches lag behind both writes,
    which is the window in which orphans used to be lost (never stripped, then collected as dangling)."""
    for round_ in range(5):
        owner = await client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                   "metadata": {"name": f"owner-{round_}"}}, namespace=namespace)
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
               "uid": owner["metadata"]["uid"]}
        for i in range(3):
            await client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": f"dep-{round_}-{i}", "labels": {"round": str(round_)}, "ownerReferences": [ref]}},
                namespace=namespace)
        await client.delete("configmaps", owner["metadata"]["name"], namespace=namespace,
                            propagation_policy="Orphan")
    for round_ in range(5):
        owner_name = f"owner-{round_}"
        await eventually(lambda: gone(client, "configmaps", owner_name, namespace))  # noqa: B023 - awaited here
    await asyncio.sleep(0.5)  # time for a wrong collection to happen
    deps = (await client.list("configmaps", namespace=namespace, label_selector="round"))["items"]
    assert sorted(d["metadata"]["name"] for d in deps) == sorted(f"dep-{r}-{i}" for r in range(5) for i in range(3))
    assert all(not d["metadata"].get("ownerReferences") for d in deps)
