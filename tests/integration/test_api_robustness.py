"""Client input the server must answer with a 4xx/504 Status instead of a 500 or a hang: wrongly typed
subresource bodies, resourceVersions from the future, contradictory list parameters."""

from __future__ import annotations

import json

import httpx
import pytest

from apiserver.handlers import watch

pytestmark = pytest.mark.etcd

CM = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"


async def test_wrongly_typed_subresource_bodies_are_client_errors(api: httpx.AsyncClient) -> None:
    await api.post(PODS, json={"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    binding = await api.post(f"{PODS}/p/binding", json={"target": 5})
    assert binding.status_code == 422 and binding.json()["details"]["causes"][0]["field"] == "target"
    await api.post("/api/v1/namespaces", json={"metadata": {"name": "fin"}})
    finalize = await api.put("/api/v1/namespaces/fin/finalize",
                             json={"metadata": {"name": "fin"}, "spec": {"finalizers": 5}})
    assert finalize.status_code == 422 and "spec.finalizers" in finalize.json()["message"]
    eviction = await api.post(f"{PODS}/p/eviction", json={"apiVersion": "policy/v1", "kind": "Eviction",
                                                          "metadata": {"name": "p"}, "deleteOptions": 7})
    assert eviction.status_code == 422
    assert (await api.get(f"{PODS}/p")).status_code == 200


@pytest.mark.parametrize("match", ["Exact", "NotOlderThan"])
async def test_list_from_a_future_resource_version_is_a_504(api: httpx.AsyncClient, match: str) -> None:
    answer = await api.get(CM, params={"resourceVersion": "999999999", "resourceVersionMatch": match})
    assert answer.status_code == 504, answer.text
    status = answer.json()
    assert status["reason"] == "Timeout" and status["message"].startswith("Too large resource version: 999999999")
    assert status["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"


async def test_watch_from_a_future_resource_version_ends_with_an_error(api: httpx.AsyncClient,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "FUTURE_REVISION_WAIT", 0.3)  # Kubernetes waits 3 s for its cache
    async with api.stream("GET", CM, params={"watch": "1", "resourceVersion": "999999999"}, timeout=5) as stream:
        lines = [json.loads(line) async for line in stream.aiter_lines() if line.strip()]
    assert [line["type"] for line in lines] == ["ERROR"]
    assert lines[0]["object"]["code"] == 504 and lines[0]["object"]["reason"] == "Timeout"


async def test_watch_from_a_just_reached_resource_version_works(api: httpx.AsyncClient) -> None:
    rv = (await api.post(CM, json={"metadata": {"name": "now"}})).json()["metadata"]["resourceVersion"]
    async with api.stream("GET", CM, params={"watch": "1", "resourceVersion": rv, "timeoutSeconds": "1"},
                          timeout=5) as stream:
        await api.post(CM, json={"metadata": {"name": "next"}})
        lines = [json.loads(line) async for line in stream.aiter_lines() if line.strip()]
    assert [(line["type"], line["object"]["metadata"]["name"]) for line in lines] == [("ADDED", "next")]


async def test_continue_with_resource_version_is_a_400(api: httpx.AsyncClient) -> None:
    for name in ("a", "b"):
        await api.post(CM, json={"metadata": {"name": name}})
    token = (await api.get(CM, params={"limit": "1"})).json()["metadata"]["continue"]
    both = await api.get(CM, params={"limit": "1", "continue": token, "resourceVersion": "5"})
    assert both.status_code == 400
    assert both.json()["message"] == "specifying resource version is not allowed when using continue"
