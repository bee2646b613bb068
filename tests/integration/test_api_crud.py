"""Create/get/update/patch of objects: metadata, concurrency, validation, bodies and error Statuses."""

from __future__ import annotations

import asyncio

import httpx
import pytest

pytestmark = pytest.mark.etcd

CM = "/api/v1/namespaces/default/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"


def deployment(name: str, image: str = "nginx:1.25", replicas: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}}


async def test_create_fills_metadata_and_get_returns_it(api: httpx.AsyncClient) -> None:
    created = await api.post(DEPLOY, json=deployment("web"))
    assert created.status_code == 201, created.text
    obj = created.json()
    meta = obj["metadata"]
    assert list(obj)[:2] == ["apiVersion", "kind"] and obj["apiVersion"] == "apps/v1" and obj["kind"] == "Deployment"
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0 and meta["namespace"] == "default"
    assert meta["managedFields"][0]["manager"] == "python-httpx"
    got = (await api.get(f"{DEPLOY}/web")).json()
    assert got["metadata"]["resourceVersion"] == meta["resourceVersion"]
    again = await api.post(DEPLOY, json=deployment("web"))
    assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"
    assert again.json()["message"] == 'deployments.apps "web" already exists'
    missing = await api.get(f"{DEPLOY}/nope")
    assert missing.status_code == 404 and missing.json()["message"] == 'deployments.apps "nope" not found'


async def test_generate_name(api: httpx.AsyncClient) -> None:
    names = set()
    for _ in range(3):
        response = await api.post(CM, json={"metadata": {"generateName": "cfg-"}, "data": {}})
        assert response.status_code == 201
        names.add(response.json()["metadata"]["name"])
    assert len(names) == 3 and all(n.startswith("cfg-") and len(n) == 9 for n in names)
    nameless = await api.post(CM, json={"metadata": {}})
    assert nameless.status_code == 422 and nameless.json()["details"]["causes"][0]["field"] == "metadata.name"


async def test_namespace_rules(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/namespaces/nosuchns/configmaps", json={"metadata": {"name": "a"}})
    assert response.status_code == 404 and response.json()["message"] == 'namespaces "nosuchns" not found'
    mismatch = await api.post(CM, json={"metadata": {"name": "a", "namespace": "other"}})
    assert mismatch.status_code == 400
    assert (await api.post("/api/v1/namespaces", json={"metadata": {"name": "doomed"}})).status_code == 201
    assert (await api.delete("/api/v1/namespaces/doomed")).status_code == 200
    forbidden = await api.post("/api/v1/namespaces/doomed/configmaps", json={"metadata": {"name": "a"}})
    assert forbidden.status_code == 403 and forbidden.json()["reason"] == "Forbidden"
    assert "because it is being terminated" in forbidden.json()["message"]


async def test_update_optimistic_concurrency_and_generation(api: httpx.AsyncClient) -> None:
    obj = (await api.post(DEPLOY, json=deployment("web"))).json()
    obj["metadata"]["labels"]["extra"] = "yes"
    labelled = await api.put(f"{DEPLOY}/web", json=obj)
    assert labelled.status_code == 200 and labelled.json()["metadata"]["generation"] == 1  # metadata only
    stale = await api.put(f"{DEPLOY}/web", json=obj)  # still carries the old resourceVersion
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    assert "the object has been modified" in stale.json()["message"]
    fresh = labelled.json()
    fresh["spec"]["replicas"] = 3
    bumped = (await api.put(f"{DEPLOY}/web", json=fresh)).json()
    assert bumped["metadata"]["generation"] == 2
    assert bumped["metadata"]["uid"] == obj["metadata"]["uid"]
    del fresh["metadata"]["resourceVersion"]  # unconditional update
    fresh["spec"]["replicas"] = 4
    assert (await api.put(f"{DEPLOY}/web", json=fresh)).json()["spec"]["replicas"] == 4
    wrong_name = await api.put(f"{DEPLOY}/other", json=fresh)
    assert wrong_name.status_code == 400


async def test_unchanged_update_keeps_resource_version(api: httpx.AsyncClient) -> None:
    obj = (await api.post(CM, json={"metadata": {"name": "same"}, "data": {"a": "1"}})).json()
    again = (await api.put(f"{CM}/same", json=obj)).json()
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


async def test_field_validation_modes(api: httpx.AsyncClient) -> None:
    bad = deployment("strict")
    bad["spec"]["bogus"] = 1
    strict = await api.post(f"{DEPLOY}?fieldValidation=Strict", json=bad)
    assert strict.status_code == 400 and 'unknown field "spec.bogus"' in strict.json()["message"]
    warn = await api.post(DEPLOY, json=bad)  # Warn is the default
    assert warn.status_code == 201 and 'unknown field \\"spec.bogus\\"' in warn.headers["warning"]
    assert warn.headers["warning"].startswith("299 - ")
    bad["metadata"]["name"] = "ignored"
    ignore = await api.post(f"{DEPLOY}?fieldValidation=Ignore", json=bad)
    assert ignore.status_code == 201 and "warning" not in ignore.headers
    wrong_type = deployment("typed")
    wrong_type["spec"]["replicas"] = "three"
    invalid = await api.post(DEPLOY, json=wrong_type)
    assert invalid.status_code == 422 and invalid.json()["reason"] == "Invalid"
    assert invalid.json()["details"]["causes"][0]["field"] == "spec.replicas"


async def test_dry_run_never_stores(api: httpx.AsyncClient) -> None:
    response = await api.post(f"{CM}?dryRun=All", json={"metadata": {"name": "dry"}})
    assert response.status_code == 201 and response.json()["metadata"]["uid"]
    assert (await api.get(f"{CM}/dry")).status_code == 404


async def test_bodies_yaml_malformed_too_large_and_protobuf(api: httpx.AsyncClient) -> None:
    yaml_body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n"
    created = await api.post(CM, content=yaml_body, headers={"content-type": "application/yaml"})
    assert created.status_code == 201 and created.json()["data"] == {"k": "v"}
    malformed = await api.post(CM, content=b"{nope", headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["kind"] == "Status"
    huge = await api.post(CM, content=b"{" + b" " * (3 * 1024 * 1024 + 10) + b"}",
                          headers={"content-type": "application/json"})
    assert huge.status_code == 413
    wrong_kind = await api.post(CM, json={"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "x"}})
    assert wrong_kind.status_code == 400
    # kubectl create configmap: k8s\0 + runtime.Unknown{typeMeta{v1, ConfigMap}, raw=ConfigMap protobuf}
    meta = _field(1, _field(1, b"pb") + _field(3, b"default"))
    raw = meta + _field(2, _field(1, b"key") + _field(2, b"value"))
    envelope = b"k8s\x00" + _field(1, _field(1, b"v1") + _field(2, b"ConfigMap")) + _field(2, raw)
    proto = await api.post(CM, content=envelope, headers={"content-type": "application/vnd.kubernetes.protobuf"})
    assert proto.status_code == 201, proto.text
    assert proto.json()["data"] == {"key": "value"} and proto.json()["metadata"]["name"] == "pb"
    pod_env = b"k8s\x00" + _field(1, _field(1, b"v1") + _field(2, b"Pod")) + _field(2, b"\x0a\x00")
    refused = await api.post("/api/v1/namespaces/default/pods", content=pod_env,
                             headers={"content-type": "application/vnd.kubernetes.protobuf"})
    assert refused.status_code == 415 and refused.json()["reason"] == "UnsupportedMediaType"


def _field(number: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([(number << 3) | 2, len(payload)]) + payload


async def test_patch_types(api: httpx.AsyncClient) -> None:
    await api.post(DEPLOY, json=deployment("web"))
    merge = await api.patch(f"{DEPLOY}/web", json={"metadata": {"labels": {"tier": "front"}}},
                            headers={"content-type": "application/merge-patch+json"})
    assert merge.status_code == 200 and merge.json()["metadata"]["labels"]["tier"] == "front"
    strategic = await api.patch(
        f"{DEPLOY}/web", headers={"content-type": "application/strategic-merge-patch+json"},
        json={"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}}})
    assert strategic.status_code == 200, strategic.text
    containers = strategic.json()["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("web", "nginx:1.26")]
    assert strategic.json()["metadata"]["generation"] == 2
    json_patch = await api.patch(f"{DEPLOY}/web", json=[{"op": "replace", "path": "/spec/replicas", "value": 2}],
                                 headers={"content-type": "application/json-patch+json"})
    assert json_patch.json()["spec"]["replicas"] == 2
    unsupported = await api.patch(f"{DEPLOY}/web", json={}, headers={"content-type": "text/plain"})
    assert unsupported.status_code == 415
    missing = await api.patch(f"{DEPLOY}/nope", json={}, headers={"content-type": "application/merge-patch+json"})
    assert missing.status_code == 404


async def test_server_side_apply_creates_then_updates(api: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/apply-patch+yaml"}
    url = f"{DEPLOY}/ssa?fieldManager=kubectl&fieldValidation=Strict&force=false"
    first = await api.patch(url, json=deployment("ssa"), headers=headers)
    assert first.status_code == 201, first.text
    managers = [(m["manager"], m["operation"]) for m in first.json()["metadata"]["managedFields"]]
    assert ("kubectl", "Apply") in managers
    second = await api.patch(url, json=deployment("ssa", image="nginx:1.27"), headers=headers)
    assert second.status_code == 200
    assert second.json()["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    no_manager = await api.patch(f"{DEPLOY}/ssa", json=deployment("ssa"), headers=headers)
    assert no_manager.status_code == 400


async def test_concurrent_patches_all_apply(api: httpx.AsyncClient) -> None:
    await api.post(CM, json={"metadata": {"name": "counter"}, "data": {}})
    headers = {"content-type": "application/merge-patch+json"}
    results = await asyncio.gather(*(api.patch(f"{CM}/counter", json={"data": {f"k{i}": "v"}}, headers=headers)
                                     for i in range(10)))
    assert all(r.status_code == 200 for r in results)
    assert len((await api.get(f"{CM}/counter")).json()["data"]) == 10


async def test_status_subresource(api: httpx.AsyncClient) -> None:
    obj = (await api.post(DEPLOY, json=deployment("web"))).json()
    status = await api.patch(f"{DEPLOY}/web/status", json={"status": {"replicas": 5}, "spec": {"replicas": 9}},
                             headers={"content-type": "application/merge-patch+json"})
    assert status.status_code == 200, status.text
    assert status.json()["status"]["replicas"] == 5 and status.json()["spec"]["replicas"] == 1
    got = (await api.get(f"{DEPLOY}/web/status")).json()
    assert got["status"]["replicas"] == 5
    got["status"]["replicas"] = 6
    assert (await api.put(f"{DEPLOY}/web/status", json=got)).json()["status"]["replicas"] == 6
    assert obj["metadata"]["generation"] == 1


async def test_put_creates_kinds_that_allow_it(api: httpx.AsyncClient) -> None:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"},
             "spec": {"holderIdentity": "me"}}
    url = "/apis/coordination.k8s.io/v1/namespaces/default/leases/leader"
    assert (await api.put(url, json=lease)).status_code == 201
    assert (await api.put(url, json=lease)).status_code == 200
    missing_cm = await api.put(f"{CM}/absent", json={"metadata": {"name": "absent"}})
    assert missing_cm.status_code == 404


async def test_unserved_representations_are_refused(api: httpx.AsyncClient) -> None:
    accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
    response = await api.get(CM, headers={"accept": accept})
    assert response.status_code == 406 and response.json()["reason"] == "NotAcceptable"
    fallback = await api.get(CM, headers={"accept": f"{accept},application/json"})
    assert fallback.status_code == 200 and fallback.json()["kind"] == "ConfigMapList"


async def test_objects_over_etcds_request_limit_are_a_413(api: httpx.AsyncClient) -> None:
    # Under the 3 MiB body cap, over etcd's 1.5 MiB request limit: refused like etcd does, never a 500.
    env = [{"name": f"E{i}", "value": "x" * 1000} for i in range(1700)]
    big = deployment("big")
    big["spec"]["template"]["spec"]["containers"][0]["env"] = env
    refused = await api.post(DEPLOY, json=big)
    assert refused.status_code == 413 and refused.json()["message"] == "etcdserver: request is too large"
    assert (await api.get(f"{DEPLOY}/big")).status_code == 404
    small = (await api.post(DEPLOY, json=deployment("big"))).json()
    small["spec"]["template"]["spec"]["containers"][0]["env"] = env
    assert (await api.put(f"{DEPLOY}/big", json=small)).status_code == 413
    assert "env" not in (await api.get(f"{DEPLOY}/big")).json()["spec"]["template"]["spec"]["containers"][0]
