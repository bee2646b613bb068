"""ReplicaSet and Deployment controllers against real etcd + API server, controller-manager in-process.

Pods are never run (no node agent): readiness is driven through pods/status as a kubelet would report it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiokube.client import ApiClient
from controllers import deployment_util as du
from controllers.manager import ManagerOptions
from controllers.podutil import is_active, is_ready
from controllers.testing import RolloutChecker, eventually, mark_pod_ready, running_manager

pytestmark = pytest.mark.etcd


@pytest.fixture
async def manager(client: ApiClient) -> AsyncIterator[Any]:
    options = ManagerOptions(leader_elect=False, controllers=["replicaset", "deployment"])
    async with running_manager(client, options) as mgr:
        yield mgr


def deployment(name: str, replicas: int, image: str = "busybox:1", **spec: Any) -> dict[str, Any]:
    # The fields the API server defaults are spelled out, so these tests do not depend on its defaulting.
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}, **spec}}


async def pods_of(client: ApiClient, namespace: str, app: str) -> list[dict[str, Any]]:
    items = (await client.list("pods", namespace=namespace, label_selector=f"app={app}"))["items"]
    return [p for p in items if is_active(p)]


async def make_all_ready(client: ApiClient, namespace: str, app: str) -> None:
    for pod in await pods_of(client, namespace, app):
        if not is_ready(pod):
            await mark_pod_ready(client, pod)


async def test_deployment_creates_replicaset_and_pods(client: ApiClient, namespace: str, manager: Any) -> None:
    await client.create("deployments", deployment("web", 3), namespace=namespace)

    async def three_pods() -> bool:
        return len(await pods_of(client, namespace, "web")) == 3

    await eventually(three_pods)
    [rs] = (await client.list("replicasets", namespace=namespace))["items"]
    assert rs["metadata"]["annotations"][du.REVISION] == "1"
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    for pod in await pods_of(client, namespace, "web"):
        assert pod["metadata"]["ownerReferences"][0]["name"] == rs["metadata"]["name"]
        assert pod["metadata"]["labels"][du.POD_TEMPLATE_HASH] == rs["metadata"]["labels"][du.POD_TEMPLATE_HASH]
    await make_all_ready(client, namespace, "web")

    async def complete() -> bool:
        d = await client.get("deployments", "web", namespace=namespace)
        st = d.get("status") or {}
        cond = du.get_condition(st, "Progressing")
        return (st.get("availableReplicas") == 3 and st.get("updatedReplicas") == 3
                and st.get("observedGeneration") == d["metadata"]["generation"]
                and cond is not None and cond["reason"] == du.NEW_RS_AVAILABLE)

    await eventually(complete)
    events = (await client.list("events", namespace=namespace))["items"]
    reasons = {e["reason"] for e in events}
    assert {"ScalingReplicaSet", "SuccessfulCreate"} <= reasons


async def test_replicaset_scale_up_and_down(client: ApiClient, namespace: str, manager: Any) -> None:
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "fe"},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "fe"}},
                   "template": {"metadata": {"labels": {"app": "fe"}},
                                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}}
    await client.create("replicasets", rs, namespace=namespace)

    async def count(n: int) -> bool:
        return len(await pods_of(client, namespace, "fe")) == n

    await eventually(lambda: count(2))
    await client.patch("replicasets", "fe", {"spec": {"replicas": 7}}, namespace=namespace, patch_type="merge")
    await eventually(lambda: count(7))
    await make_all_ready(client, namespace, "fe")

    async def status_ready(n: int) -> bool:
        st = (await client.get("replicasets", "fe", namespace=namespace)).get("status") or {}
        return st.get("readyReplicas") == n and st.get("availableReplicas") == n and st.get("replicas") == n

    await eventually(lambda: status_ready(7))
    await client.patch("replicasets", "fe", {"spec": {"replicas": 1}}, namespace=namespace, patch_type="merge")
    await eventually(lambda: count(1))
    await eventually(lambda: status_ready(1))
    await asyncio.sleep(0.3)
    assert len(await pods_of(client, namespace, "fe")) == 1  # no overshoot after settling


async def test_rolling_update_respects_surge_and_unavailability(client: ApiClient, namespace: str,
                                                                 manager: Any) -> None:
    await client.create("deployments", deployment("roll", 10), namespace=namespace)

    async def settled(image: str) -> bool:
        d = await client.get("deployments", "roll", namespace=namespace)
        st = d.get("status") or {}
        pods = await pods_of(client, namespace, "roll")
        return (st.get("observedGeneration") == d["metadata"]["generation"] and st.get("updatedReplicas") == 10
                and st.get("availableReplicas") == 10 and st.get("replicas") == 10 and len(pods) == 10
                and all(p["spec"]["containers"][0]["image"] == image for p in pods))

    rv = (await client.list("pods", namespace=namespace))["metadata"]["resourceVersion"]
    checker = RolloutChecker(client, namespace, "roll")
    task = asyncio.create_task(checker.run(rv))
    try:
        await eventually(lambda: settled("busybox:1"), within=20)
        checker.max_active, checker.tracking_ready = 0, True
        checker.record()
        await client.patch("deployments", "roll",
                           {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}},
                           namespace=namespace, patch_type="strategic")
        await eventually(lambda: settled("busybox:2"), within=30)
    finally:
        task.cancel()
    assert checker.max_active <= 10 + 3, checker.max_active   # maxSurge 25% of 10 rounds up to 3
    assert checker.min_ready >= 10 - 2, checker.min_ready     # maxUnavailable 25% of 10 rounds down to 2
    rss = (await client.list("replicasets", namespace=namespace))["items"]
    assert sorted((du.revision(r), du.replicas_of(r)) for r in rss) == [(1, 0), (2, 10)]

    # rollout undo: kubectl puts the previous template back; the old ReplicaSet becomes revision 3
    await client.patch("deployments", "roll",
                       {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}},
                       namespace=namespace, patch_type="strategic")
    await make_all_ready(client, namespace, "roll")

    async def undone() -> bool:
        await make_all_ready(client, namespace, "roll")
        return await settled("busybox:1")

    await eventually(undone, within=30)
    rss = (await client.list("replicasets", namespace=namespace))["items"]
    assert sorted((du.revision(r), du.replicas_of(r)) for r in rss) == [(2, 0), (3, 10)]


async def test_pause_blocks_rollout_but_not_scaling(client: ApiClient, namespace: str, manager: Any) -> None:
    await client.create("deployments", deployment("pz", 2), namespace=namespace)

    async def ready_count(n: int, image: str) -> bool:
        await make_all_ready(client, namespace, "pz")
        pods = await pods_of(client, namespace, "pz")
        return len(pods) == n and all(p["spec"]["containers"][0]["image"] == image for p in pods)

    await eventually(lambda: ready_count(2, "busybox:1"))
    await client.patch("deployments", "pz", {"spec": {"paused": True}}, namespace=namespace, patch_type="merge")
    await client.patch("deployments", "pz",
                       {"spec": {"replicas": 3, "template": {"spec": {"containers": [
                           {"name": "c", "image": "busybox:2"}]}}}},
                       namespace=namespace, patch_type="strategic")
    await eventually(lambda: ready_count(3, "busybox:1"))

    async def paused_condition() -> bool:
        st = (await client.get("deployments", "pz", namespace=namespace)).get("status") or {}
        cond = du.get_condition(st, "Progressing")
        return cond is not None and cond["reason"] == du.PAUSED

    await eventually(paused_condition)
    await client.patch("deployments", "pz", {"spec": {"paused": False}}, namespace=namespace, patch_type="merge")
    await eventually(lambda: ready_count(3, "busybox:2"), within=20)
