"""Version, health, discovery, openapi and metrics endpoints of the real API server."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.etcd


async def test_version_and_health_accept_trailing_slashes(api: httpx.AsyncClient) -> None:
    version = (await api.get("/version/")).json()
    assert version["gitVersion"] == "v1.32.0" and version["minor"] == "32"
    for path in ("/healthz", "/livez", "/readyz", "/readyz?verbose"):
        response = await api.get(path)
        assert response.status_code == 200, path


async def test_discovery_documents(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/")).json()["versions"] == ["v1"]
    groups = {g["name"]: g for g in (await api.get("/apis")).json()["groups"]}
    assert groups["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    core = {r["name"]: r for r in (await api.get("/api/v1")).json()["resources"]}
    assert core["pods"]["shortNames"] == ["po"] and core["pods"]["categories"] == ["all"]
    assert core["pods"]["namespaced"] and not core["nodes"]["namespaced"]
    assert core["pods/eviction"] == {"name": "pods/eviction", "singularName": "", "namespaced": True,
                                     "kind": "Eviction", "verbs": ["create"], "group": "policy", "version": "v1"}
    apps = {r["name"]: r for r in (await api.get("/apis/apps/v1/")).json()["resources"]}
    assert apps["deployments/scale"]["kind"] == "Scale" and apps["deployments/scale"]["group"] == "autoscaling"
    assert (await api.get("/apis/apps")).json()["kind"] == "APIGroup"
    missing = await api.get("/apis/nope/v1")
    assert missing.status_code == 404 and missing.json()["kind"] == "Status"


async def test_openapi(api: httpx.AsyncClient) -> None:
    index = (await api.get("/openapi/v3")).json()
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    doc = (await api.get(url)).json()
    assert any(op.get("patch", {}).get("x-kubernetes-group-version-kind", {}).get("kind") == "Deployment"
               for op in doc["paths"].values())
    v2 = await api.get("/openapi/v2")
    assert v2.status_code == 404 and v2.json()["kind"] == "Status"


async def test_metrics_count_requests(api: httpx.AsyncClient) -> None:
    await api.get("/api/v1/namespaces/default/pods")
    text = (await api.get("/metrics")).text
    assert 'apiserver_request_total{code="200",group="",resource="pods",subresource="",verb="list"}' in text
    assert "apiserver_request_duration_seconds_bucket" in text
    assert 'etcd_request_duration_seconds_count{operation="list",type="all"}' in text


async def test_system_namespaces_exist(api: httpx.AsyncClient) -> None:
    names = {n["metadata"]["name"] for n in (await api.get("/api/v1/namespaces")).json()["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
