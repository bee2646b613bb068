"""ReplicaSet reconcile against in-memory fakes: slow start, expectations, deletion, adoption, status."""

from __future__ import annotations

from typing import Any

from aiokube.api.errors import ApiError
from controllers.replicaset import ReplicaSetReconciler, slow_start_batch
from controllers.testing import FakeClient, FakeInformers, FakeQueue

NOW = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def replicaset(replicas: int, min_ready: int = 0) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


def setup(replicas: int, min_ready: int = 0) -> tuple[FakeClient, FakeInformers, ReplicaSetReconciler, FakeQueue]:
    clock = [NOW]
    client = FakeClient(clock=lambda: clock[0])
    informers = FakeInformers()
    rec = ReplicaSetReconciler(client=client, informers=informers, clock=lambda: clock[0])
    queue = FakeQueue()
    rec.watch(queue)
    client.seed("replicasets", replicaset(replicas, min_ready))
    informers.sync(client)
    return client, informers, rec, queue


async def test_slow_start_batches_stop_at_first_failure() -> None:
    calls: list[int] = []

    async def ok() -> None:
        calls.append(1)

    assert await slow_start_batch(10, 1, ok) == (10, None)
    assert len(calls) == 10
    count = 0

    async def fails_after_three() -> None:
        nonlocal count
        count += 1
        if count > 3:
            raise RuntimeError("quota")

    done, err = await slow_start_batch(10, 1, fails_after_three)
    assert done == 3 and isinstance(err, RuntimeError)
    assert count == 7  # batches 1, 2, 4: the failing batch is the last one tried


async def test_scale_up_creates_owned_pods_once_until_observed() -> None:
    client, informers, rec, _ = setup(5)
    await rec.reconcile("ns/web")
    pods = client.all("pods")
    assert len(pods) == 5
    pod = pods[0]
    assert pod["metadata"]["generateName"] == "web-"
    assert pod["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    ref = pod["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "ReplicaSet" and ref["controller"] and ref["blockOwnerDeletion"]
    # the watch has not delivered the pods yet: expectations stop a second round of creates
    await rec.reconcile("ns/web")
    assert len(client.all("pods")) == 5
    informers.sync(client)
    await rec.reconcile("ns/web")
    assert len(client.all("pods")) == 5
    rs = client.all("replicasets")[0]
    assert rs["status"]["replicas"] == 5 and rs["status"]["fullyLabeledReplicas"] == 5
    assert rs["status"]["readyReplicas"] == 0 and rs["status"]["observedGeneration"] == 1


async def test_scale_down_deletes_the_least_valuable_pods() -> None:
    client, informers, rec, _ = setup(3)
    await rec.reconcile("ns/web")
    informers.sync(client)
    pods = sorted(client.all("pods"), key=lambda p: p["metadata"]["name"])
    pods[0]["spec"]["nodeName"] = "n1"
    pods[0]["status"] = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
    await client.update_status("pods", pods[0])
    await client.update("pods", {**pods[0], "metadata": (await client.get("pods", pods[0]["metadata"]["name"],
                                                                          "ns"))["metadata"]})
    rs = client.all("replicasets")[0]
    rs["spec"]["replicas"] = 1
    await client.update("replicasets", rs)
    informers.sync(client)
    await rec.reconcile("ns/web")
    left = client.all("pods")
    assert [p["metadata"]["name"] for p in left] == [pods[0]["metadata"]["name"]]  # the ready, scheduled one


async def test_adopts_orphans_and_releases_non_matching() -> None:
    client, informers, rec, _ = setup(1)
    orphan = client.seed("pods", {"metadata": {"name": "orphan", "namespace": "ns", "labels": {"app": "web"}},
                                  "spec": {}, "status": {"phase": "Running"}})
    informers.sync(client)
    await rec.reconcile("ns/web")
    adopted = await client.get("pods", "orphan", "ns")
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == client.all("replicasets")[0]["metadata"]["uid"]
    assert len(client.all("pods")) == 1  # the orphan fills the only replica
    adopted["metadata"]["labels"] = {"app": "other"}
    await client.update("pods", adopted)
    informers.sync(client)
    await rec.reconcile("ns/web")
    released = await client.get("pods", "orphan", "ns")
    assert released["metadata"]["ownerReferences"] == []
    assert orphan["metadata"]["uid"] == released["metadata"]["uid"]


async def test_available_waits_for_min_ready_seconds_and_requeues() -> None:
    client, informers, rec, _ = setup(1, min_ready=10)
    await rec.reconcile("ns/web")
    informers.sync(client)
    pod = client.all("pods")[0]
    pod["status"] = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
    await client.update_status("pods", pod)
    informers.sync(client)
    result = await rec.reconcile("ns/web")
    status = client.all("replicasets")[0]["status"]
    assert status["readyReplicas"] == 1 and status["availableReplicas"] == 0
    assert result.requeue_after is not None and 10 <= result.requeue_after <= 11


async def test_create_failure_sets_replica_failure_and_raises() -> None:
    client, _, rec, _ = setup(2)
    client.fail_creates = lambda _r, _b: ApiError(403, 'pods "x" is forbidden: exceeded quota', "Forbidden")
    try:
        await rec.reconcile("ns/web")
    except ApiError as err:
        assert err.code == 403
    else:
        raise AssertionError("reconcile should fail so the key is retried")
    cond = client.all("replicasets")[0]["status"]["conditions"][0]
    assert cond["type"] == "ReplicaFailure" and cond["reason"] == "FailedCreate"
    assert rec.expectations.pending("ns/web") == (0, 0)  # failed creates are not waited for
