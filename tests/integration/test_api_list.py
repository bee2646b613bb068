"""Lists: selectors, paging with continue tokens, all-namespace lists and Table output."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.etcd

CM = "/api/v1/namespaces/default/configmaps"
TABLE = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
         "application/json")


async def _make(api: httpx.AsyncClient, count: int, labels: dict[str, str] | None = None, ns: str = "default") -> None:
    for i in range(count):
        meta = {"name": f"cm-{i:02d}", "labels": labels or {"idx": str(i % 2)}}
        response = await api.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": meta})
        assert response.status_code == 201, response.text


async def test_list_selectors(api: httpx.AsyncClient) -> None:
    await _make(api, 6)
    lst = (await api.get(CM)).json()
    assert lst["kind"] == "ConfigMapList" and lst["apiVersion"] == "v1" and len(lst["items"]) == 6
    assert int(lst["metadata"]["resourceVersion"]) >= max(int(i["metadata"]["resourceVersion"]) for i in lst["items"])
    assert all(i["kind"] == "ConfigMap" for i in lst["items"])
    odd = (await api.get(CM, params={"labelSelector": "idx=1"})).json()["items"]
    assert [i["metadata"]["name"] for i in odd] == ["cm-01", "cm-03", "cm-05"]
    named = (await api.get(CM, params={"fieldSelector": "metadata.name=cm-02"})).json()["items"]
    assert [i["metadata"]["name"] for i in named] == ["cm-02"]
    unknown = await api.get(CM, params={"fieldSelector": "spec.bogus=x"})
    assert unknown.status_code == 400 and "field label not supported" in unknown.json()["message"]


async def test_paging_with_continue(api: httpx.AsyncClient) -> None:
    await _make(api, 5)
    first = (await api.get(CM, params={"limit": 2})).json()
    assert [i["metadata"]["name"] for i in first["items"]] == ["cm-00", "cm-01"]
    assert first["metadata"]["remainingItemCount"] == 3
    await api.post(CM, json={"metadata": {"name": "cm-99"}})  # not visible: the pages share one revision
    names = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = (await api.get(CM, params={"limit": 2, "continue": token})).json()
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
    assert names == [f"cm-{i:02d}" for i in range(5)]
    selected = (await api.get(CM, params={"limit": 1, "labelSelector": "idx=1"})).json()
    assert [i["metadata"]["name"] for i in selected["items"]] == ["cm-01"] and selected["metadata"]["continue"]
    bad = await api.get(CM, params={"limit": 1, "continue": "garbage"})
    assert bad.status_code == 400


async def test_expired_continue_is_410(api: httpx.AsyncClient, etcd_url: str) -> None:
    await _make(api, 3)
    first = (await api.get(CM, params={"limit": 1})).json()
    for i in range(3):
        await api.patch(f"{CM}/cm-00", json={"data": {"n": str(i)}},
                        headers={"content-type": "application/merge-patch+json"})
    from apiserver.storage.etcd import EtcdStorage

    storage = EtcdStorage([etcd_url])
    await storage.connect()
    try:
        await storage.compact(await storage.current_revision())
    finally:
        await storage.close()
    expired = await api.get(CM, params={"limit": 1, "continue": first["metadata"]["continue"]})
    assert expired.status_code == 410 and expired.json()["reason"] == "Expired"
    assert "continue parameter is too old" in expired.json()["message"]


async def test_all_namespaces(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/namespaces", json={"metadata": {"name": "other"}})
    await _make(api, 2)
    await _make(api, 1, ns="other")
    everything = (await api.get("/api/v1/configmaps")).json()["items"]
    assert sorted((i["metadata"]["namespace"], i["metadata"]["name"]) for i in everything) == [
        ("default", "cm-00"), ("default", "cm-01"), ("other", "cm-00")]
    in_other = (await api.get("/api/v1/configmaps", params={"fieldSelector": "metadata.namespace=other"})).json()
    assert len(in_other["items"]) == 1


async def test_tables(api: httpx.AsyncClient) -> None:
    await _make(api, 2)
    table = (await api.get(CM, headers={"accept": TABLE})).json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["columnDefinitions"][0]["name"] == "Name"
    row = table["rows"][0]
    assert row["cells"][0] == "cm-00"
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["namespace"] == "default"
    full = (await api.get(f"{CM}/cm-01", params={"includeObject": "Object"}, headers={"accept": TABLE})).json()
    assert full["rows"][0]["object"]["kind"] == "ConfigMap" and len(full["rows"]) == 1
    plain = (await api.get(CM, headers={"accept": "application/json"})).json()
    assert plain["kind"] == "ConfigMapList"


async def test_list_at_an_exact_resource_version(api: httpx.AsyncClient) -> None:
    await _make(api, 1)
    rv = (await api.get(CM)).json()["metadata"]["resourceVersion"]
    await api.post(CM, json={"metadata": {"name": "later"}})
    then = (await api.get(CM, params={"resourceVersion": rv, "resourceVersionMatch": "Exact"})).json()
    assert [i["metadata"]["name"] for i in then["items"]] == ["cm-00"]
    assert then["metadata"]["resourceVersion"] == rv
    now = (await api.get(CM, params={"resourceVersion": rv, "resourceVersionMatch": "NotOlderThan"})).json()
    assert len(now["items"]) == 2
    bad = await api.get(CM, params={"resourceVersionMatch": "Exact"})
    assert bad.status_code == 400
