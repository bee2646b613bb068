"""DELETE semantics: immediate deletes, finalizers, propagation policies, graceful pod deletion, namespaces
terminating, preconditions, dryRun and deletecollection."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.etcd

CM = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"
MERGE = {"content-type": "application/merge-patch+json"}


def pod(name: str, node: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def test_plain_delete(api: httpx.AsyncClient) -> None:
    await api.post(CM, json={"metadata": {"name": "a"}})
    response = await api.request("DELETE", f"{CM}/a", json={"propagationPolicy": "Background"})
    assert response.status_code == 200 and response.json()["status"] == "Success"
    assert response.json()["details"]["name"] == "a"
    assert (await api.get(f"{CM}/a")).status_code == 404
    again = await api.delete(f"{CM}/a")
    assert again.status_code == 404 and again.json()["reason"] == "NotFound"


async def test_finalizers_hold_the_object_until_removed(api: httpx.AsyncClient) -> None:
    await api.post(CM, json={"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    deleting = await api.delete(f"{CM}/held")
    assert deleting.status_code == 200 and deleting.json()["metadata"]["deletionTimestamp"]
    assert (await api.get(f"{CM}/held")).json()["metadata"]["deletionTimestamp"]
    released = await api.patch(f"{CM}/held", json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert released.status_code == 200
    assert (await api.get(f"{CM}/held")).status_code == 404


async def test_propagation_policies_add_gc_finalizers(api: httpx.AsyncClient) -> None:
    for name, policy, finalizer in (("fg", "Foreground", "foregroundDeletion"), ("or", "Orphan", "orphan")):
        await api.post(CM, json={"metadata": {"name": name}})
        response = await api.request("DELETE", f"{CM}/{name}", json={"propagationPolicy": policy})
        assert response.status_code == 200
        assert response.json()["metadata"]["finalizers"] == [finalizer]
        assert response.json()["metadata"]["deletionTimestamp"]
    bad = await api.request("DELETE", f"{CM}/fg", json={"propagationPolicy": "Sideways"})
    assert bad.status_code == 422


async def test_pod_graceful_deletion(api: httpx.AsyncClient) -> None:
    await api.post(PODS, json=pod("unbound"))
    gone = await api.delete(f"{PODS}/unbound")
    assert gone.status_code == 200 and gone.json()["kind"] == "Pod"
    assert (await api.get(f"{PODS}/unbound")).status_code == 404
    await api.post(PODS, json=pod("bound", node="n1"))
    graceful = (await api.delete(f"{PODS}/bound")).json()
    assert graceful["metadata"]["deletionGracePeriodSeconds"] == 30 and graceful["metadata"]["deletionTimestamp"]
    assert (await api.get(f"{PODS}/bound")).status_code == 200
    # While its grace period runs the node agent keeps writing status; that must not remove the pod early.
    status = await api.patch(f"{PODS}/bound/status", json={"status": {"phase": "Running"}}, headers=MERGE)
    assert status.status_code == 200, status.text
    assert (await api.get(f"{PODS}/bound")).json()["status"]["phase"] == "Running"
    final = await api.request("DELETE", f"{PODS}/bound", json={"gracePeriodSeconds": 0})  # the node agent's
    assert final.status_code == 200
    assert (await api.get(f"{PODS}/bound")).status_code == 404
    await api.post(PODS, json=pod("forced", node="n1"))
    assert (await api.delete(f"{PODS}/forced", params={"gracePeriodSeconds": "0"})).status_code == 200
    assert (await api.get(f"{PODS}/forced")).status_code == 404


async def test_preconditions_and_dry_run(api: httpx.AsyncClient) -> None:
    obj = (await api.post(CM, json={"metadata": {"name": "p"}})).json()
    wrong = await api.request("DELETE", f"{CM}/p", json={"preconditions": {"uid": "not-it"}})
    assert wrong.status_code == 409 and "Precondition failed" in wrong.json()["message"]
    dry = await api.delete(f"{CM}/p", params={"dryRun": "All"})
    assert dry.status_code == 200 and (await api.get(f"{CM}/p")).status_code == 200
    right = await api.request("DELETE", f"{CM}/p", json={"preconditions": {"uid": obj["metadata"]["uid"]}})
    assert right.status_code == 200


async def test_namespace_termination(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/namespaces", json={"metadata": {"name": "gone"}})
    terminating = (await api.delete("/api/v1/namespaces/gone")).json()
    assert terminating["status"]["phase"] == "Terminating"
    assert terminating["metadata"]["deletionTimestamp"] and "kubernetes" in terminating["spec"]["finalizers"]
    twice = await api.delete("/api/v1/namespaces/gone")
    assert twice.status_code == 409
    ns = (await api.get("/api/v1/namespaces/gone")).json()
    ns["spec"]["finalizers"] = []
    finalized = await api.put("/api/v1/namespaces/gone/finalize", json=ns)
    assert finalized.status_code == 200, finalized.text
    assert (await api.get("/api/v1/namespaces/gone")).status_code == 404


async def test_delete_collection(api: httpx.AsyncClient) -> None:
    for i, app in enumerate(("a", "a", "b")):
        await api.post(CM, json={"metadata": {"name": f"c{i}", "labels": {"app": app}}})
    response = await api.delete(CM, params={"labelSelector": "app=a"})
    assert response.status_code == 200 and len(response.json()["items"]) == 2
    left = [i["metadata"]["name"] for i in (await api.get(CM)).json()["items"]]
    assert left == ["c2"]


async def test_dry_run_namespace_delete_changes_nothing(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/namespaces", json={"metadata": {"name": "dry"}})
    dry = await api.delete("/api/v1/namespaces/dry", params={"dryRun": "All"})
    assert dry.status_code == 200 and dry.json()["metadata"]["deletionTimestamp"]
    assert "deletionTimestamp" not in (await api.get("/api/v1/namespaces/dry")).json()["metadata"]
    created = await api.post("/api/v1/namespaces/dry/configmaps", json={"metadata": {"name": "still-writable"}})
    assert created.status_code == 201, created.text


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
async def test_system_namespaces_may_not_be_deleted(api: httpx.AsyncClient, name: str) -> None:
    await api.post("/api/v1/namespaces", json={"metadata": {"name": name}})  # may exist already
    refused = await api.delete(f"/api/v1/namespaces/{name}")
    assert refused.status_code == 403 and refused.json()["reason"] == "Forbidden"
    assert refused.json()["message"] == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
    assert (await api.get(f"/api/v1/namespaces/{name}")).status_code == 200


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
async def test_terminal_pods_are_deleted_at_once(api: httpx.AsyncClient, phase: str) -> None:
    name = f"done-{phase.lower()}"
    await api.post(PODS, json=pod(name, node="n1"))
    status = await api.patch(f"{PODS}/{name}/status", json={"status": {"phase": phase}}, headers=MERGE)
    assert status.status_code == 200
    assert (await api.delete(f"{PODS}/{name}")).status_code == 200
    assert (await api.get(f"{PODS}/{name}")).status_code == 404


async def test_resource_version_precondition_on_delete(api: httpx.AsyncClient) -> None:
    obj = (await api.post(CM, json={"metadata": {"name": "rvp"}})).json()
    stale = await api.request("DELETE", f"{CM}/rvp", json={"preconditions": {"resourceVersion": "1"}})
    assert stale.status_code == 409 and "Precondition failed: ResourceVersion" in stale.json()["message"]
    assert (await api.get(f"{CM}/rvp")).status_code == 200
    exact = {"preconditions": {"resourceVersion": obj["metadata"]["resourceVersion"]}}
    assert (await api.request("DELETE", f"{CM}/rvp", json=exact)).status_code == 200
    assert (await api.get(f"{CM}/rvp")).status_code == 404


async def test_absurd_grace_periods_are_handled(api: httpx.AsyncClient) -> None:
    longest = 2**63 - 1
    await api.post(PODS, json=pod("forever", node="n1"))
    answer = await api.delete(f"{PODS}/forever", params={"gracePeriodSeconds": str(longest)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"]["deletionTimestamp"] == "9999-12-31T23:59:59Z"  # the latest RFC 3339 can say
    body = pod("own")
    body["spec"].update(nodeName="n1", terminationGracePeriodSeconds=longest)
    await api.post(PODS, json=body)
    assert (await api.delete(f"{PODS}/own")).status_code == 200
    await api.post(PODS, json=pod("typed", node="n1"))
    for wrong in (True, 2**63, "5"):
        refused = await api.request("DELETE", f"{PODS}/typed", json={"gracePeriodSeconds": wrong})
        assert refused.status_code == 400, refused.text
    assert "deletionTimestamp" not in (await api.get(f"{PODS}/typed")).json()["metadata"]
