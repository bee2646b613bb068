"""Client input the server must answer with a 4xx/504 Status instead of a 500 or a hang: wrongly typed
subresource bodies, resourceVersions from the future, contradictory list parameters."""

from __future__ import annotations

import copy
import json
from typing import Any

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


DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
APPLY = {"content-type": "application/apply-patch+yaml"}
MERGE = {"content-type": "application/merge-patch+json"}


def deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx",
                                                           "ports": [{"containerPort": 80}],
                                                           "env": [{"name": "A", "value": "b"}],
                                                           "resources": {"limits": {"cpu": "1"}}}],
                                           "tolerations": [{"key": "k", "operator": "Exists"}],
                                           "volumes": [{"name": "v", "emptyDir": {}}]}}}}


async def test_nulls_are_decoded_as_zero_values(api: httpx.AsyncClient) -> None:
    # Kubernetes decodes into Go structs: a null field is absent, a null list item or map value is the zero
    # value of its type, so validation (not a crash) has the last word.
    spec_null = await api.post(DEPLOY, json={**deployment("nulls"), "spec": None})
    assert spec_null.status_code == 422 and "spec.selector" in spec_null.text
    null_item = await api.post("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
                               json={"metadata": {"name": "r"}, "rules": [None]})
    assert null_item.status_code == 422 and "rules[0].verbs" in null_item.text
    created = await api.post(CM, json={"metadata": {"name": "nulls", "annotations": None},
                                       "data": {"a": None, "b": "x"}})
    assert created.status_code == 201, created.text
    stored = (await api.get(f"{CM}/nulls")).json()
    assert stored["data"] == {"a": "", "b": "x"} and "annotations" not in stored["metadata"]
    stored["data"] = None
    replaced = await api.put(f"{CM}/nulls", json=stored)
    assert replaced.status_code == 200 and "data" not in (await api.get(f"{CM}/nulls")).json()


async def test_wrongly_typed_apply_configuration_is_a_400(api: httpx.AsyncClient) -> None:
    url = f"{DEPLOY}/typed?fieldManager=t"
    assert (await api.patch(url, json=deployment("typed"), headers=APPLY)).status_code == 201
    for broken in ({**deployment("typed"), "spec": 5}, {**deployment("typed"), "metadata": 5},
                   {**deployment("typed"), "spec": {"template": {"spec": {"containers": "web"}}}}):
        answer = await api.patch(url, json=broken, headers=APPLY)
        assert answer.status_code == 400, answer.text
        assert answer.json()["message"].startswith(
            "failed to create typed patch object (default/typed; apps/v1, Kind=Deployment): .")
    missing = await api.patch(f"{DEPLOY}/fresh?fieldManager=t", json={**deployment("fresh"), "spec": []},
                              headers=APPLY)
    assert missing.status_code == 400
    assert (await api.get(f"{DEPLOY}/fresh")).status_code == 404
    assert (await api.get(f"{DEPLOY}/typed")).json()["spec"]["replicas"] == 1


async def test_wrongly_typed_scale_is_a_422(api: httpx.AsyncClient) -> None:
    assert (await api.post(DEPLOY, json=deployment("scaled"))).status_code == 201
    scale = f"{DEPLOY}/scaled/scale"
    put = await api.put(scale, json={"apiVersion": "autoscaling/v1", "kind": "Scale",
                                     "metadata": {"name": "scaled"}, "spec": 5})
    assert put.status_code == 422 and put.json()["details"]["causes"][0]["field"] == "spec"
    patch = await api.patch(scale, json={"spec": "x"}, headers=MERGE)
    assert patch.status_code == 422
    assert (await api.get(scale)).json()["spec"]["replicas"] == 1


async def test_the_largest_limit_lists_everything(api: httpx.AsyncClient) -> None:
    await api.post(CM, json={"metadata": {"name": "one"}})
    answer = await api.get(CM, params={"limit": str(2**63 - 1)})
    assert answer.status_code == 200 and [i["metadata"]["name"] for i in answer.json()["items"]] == ["one"]
    assert "continue" not in answer.json()["metadata"]


@pytest.mark.parametrize("query", ["limit=99999999999999999999", "limit=%205", "limit=1_0",
                                   "resourceVersion=99999999999999999999999", "resourceVersion=%C2%B2",
                                   "watch=1&resourceVersion=99999999999999999999999", "timeoutSeconds=1e3&watch=1"])
async def test_numbers_go_would_not_parse_are_a_400(api: httpx.AsyncClient, query: str) -> None:
    answer = await api.get(f"{CM}?{query}")
    assert answer.status_code == 400, answer.text
    assert answer.json()["reason"] == "BadRequest"


_WRONG_VALUES: list[Any] = [None, 5, "x", [None], {"a": None}]


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [path]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found += _paths(item, (*path, key))
    return found


def _replaced(obj: Any, path: tuple[str | int, ...], value: Any) -> Any:
    if not path:
        return value
    copied = copy.deepcopy(obj)
    node = copied
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copied


async def test_no_wrongly_typed_field_is_a_500(api: httpx.AsyncClient) -> None:
    """Every node of a Deployment replaced by wrongly typed values, created and applied: always a 4xx or a
    success, never a crash of the defaulting or validation code that runs after decoding."""
    base = deployment("base")
    assert (await api.patch(f"{DEPLOY}/base?fieldManager=t", json=base, headers=APPLY)).status_code == 201
    failures = []
    for number, path in enumerate(_paths(base)):
        if path in ((), ("metadata",), ("metadata", "name")):
            continue
        for value in _WRONG_VALUES:
            body = _replaced(base, path, value)
            created = await api.post(DEPLOY, json=_replaced(body, ("metadata", "name"), f"wrong-{number}"))
            applied = await api.patch(f"{DEPLOY}/base?fieldManager=t&force=true", json=body, headers=APPLY)
            failures += [(path, value, r.status_code, r.text[:200]) for r in (created, applied)
                         if r.status_code >= 500]
            if created.status_code == 201:
                await api.delete(f"{DEPLOY}/wrong-{number}")
    assert failures == []
