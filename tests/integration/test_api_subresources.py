"""Subresources: scale, binding (both URLs), eviction, and the not-yet-served node proxy (log, exec)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.etcd

DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
PODS = "/api/v1/namespaces/default/pods"


async def _deployment(api: httpx.AsyncClient) -> None:
    body = {"metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "tier": "fe"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    assert (await api.post(DEPLOY, json=body)).status_code == 201


async def test_scale(api: httpx.AsyncClient) -> None:
    await _deployment(api)
    scale = (await api.get(f"{DEPLOY}/web/scale")).json()
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == "app=web,tier=fe"
    patched = await api.patch(f"{DEPLOY}/web/scale", json={"spec": {"replicas": 5}},
                              headers={"content-type": "application/merge-patch+json"})
    assert patched.status_code == 200 and patched.json()["spec"]["replicas"] == 5
    deployment = (await api.get(f"{DEPLOY}/web")).json()
    assert deployment["spec"]["replicas"] == 5 and deployment["metadata"]["generation"] == 2
    scale = patched.json()
    scale["spec"]["replicas"] = 1
    assert (await api.put(f"{DEPLOY}/web/scale", json=scale)).json()["spec"]["replicas"] == 1
    stale = await api.put(f"{DEPLOY}/web/scale", json=scale)
    assert stale.status_code == 409
    scale["metadata"].pop("resourceVersion")
    scale["spec"]["replicas"] = -1
    assert (await api.put(f"{DEPLOY}/web/scale", json=scale)).status_code == 422


async def test_binding(api: httpx.AsyncClient) -> None:
    for name in ("p1", "p2"):
        body = {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        assert (await api.post(PODS, json=body)).status_code == 201
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p1"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}
    bound = await api.post(f"{PODS}/p1/binding", json=binding)
    assert bound.status_code == 201 and bound.json()["status"] == "Success"
    assert (await api.get(f"{PODS}/p1")).json()["spec"]["nodeName"] == "node-a"
    twice = await api.post(f"{PODS}/p1/binding", json=binding)
    assert twice.status_code == 409 and "already assigned" in twice.json()["message"]
    binding["metadata"]["name"] = "p2"
    via_collection = await api.post("/api/v1/namespaces/default/bindings", json=binding)
    assert via_collection.status_code == 201
    assert (await api.get(f"{PODS}/p2")).json()["spec"]["nodeName"] == "node-a"


async def test_eviction_deletes_gracefully(api: httpx.AsyncClient) -> None:
    body = {"metadata": {"name": "e"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}}
    await api.post(PODS, json=body)
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "e", "namespace": "default"},
                "deleteOptions": {}}
    response = await api.post(f"{PODS}/e/eviction", json=eviction)
    assert response.status_code == 201
    assert (await api.get(f"{PODS}/e")).json()["metadata"]["deletionTimestamp"]


async def test_unknown_paths_and_methods(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/v1/namespaces/default/nothings")).status_code == 404
    assert (await api.get("/api/v1/pods/x")).status_code == 404  # namespaced object without namespace
    not_allowed = await api.delete("/api/v1/namespaces")  # namespaces have no deletecollection
    assert not_allowed.status_code == 405 and not_allowed.json()["kind"] == "Status"
    for method in ("PUT", "PATCH"):  # a collection is never replaced or patched whole
        on_collection = await api.request(method, PODS, json={"metadata": {"name": "x"}},
                                          headers={"content-type": "application/merge-patch+json"})
        assert on_collection.status_code == 405 and on_collection.json()["reason"] == "MethodNotAllowed"
