"""Write semantics beyond the basics: metadata rules shared by every kind, uid preconditions, server-side
apply conflicts, dryRun on every write verb, status ignored by main-resource writes, field selectors."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.etcd

CM = "/api/v1/namespaces/default/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
MERGE = {"content-type": "application/merge-patch+json"}
APPLY = {"content-type": "application/apply-patch+yaml"}


def deployment(name: str, replicas: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}


def owner(name: str, *, controller: bool) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": f"uid-{name}", "controller": controller}


async def test_owner_references_and_finalizers_are_validated(api: httpx.AsyncClient) -> None:
    two = await api.post(CM, json={"metadata": {"name": "two", "ownerReferences": [
        owner("a", controller=True), owner("b", controller=True)]}})
    assert two.status_code == 422
    assert 'Only one reference can have Controller set to true. Found "true" in references for ConfigMap/a and ' \
           'ConfigMap/b' in two.json()["message"]
    one = await api.post(CM, json={"metadata": {"name": "one", "ownerReferences": [
        owner("a", controller=True), owner("b", controller=False)]}})
    assert one.status_code == 201
    no_uid = await api.post(CM, json={"metadata": {"name": "nouid", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "a"}]}})
    assert no_uid.status_code == 422 and no_uid.json()["details"]["causes"][0]["field"].endswith(".uid")
    bad = await api.post(CM, json={"metadata": {"name": "fin", "finalizers": ["bad finalizer!"]}})
    assert bad.status_code == 422 and bad.json()["details"]["causes"][0]["field"] == "metadata.finalizers"
    good = await api.post(CM, json={"metadata": {"name": "fin", "finalizers": ["example.com/x", "orphan"]}})
    assert good.status_code == 201


async def test_put_with_another_uid_is_a_precondition_conflict(api: httpx.AsyncClient) -> None:
    obj = (await api.post(CM, json={"metadata": {"name": "u"}})).json()
    uid = obj["metadata"]["uid"]
    obj["metadata"]["uid"] = "changed"
    answer = await api.put(f"{CM}/u", json=obj)
    assert answer.status_code == 409
    assert answer.json()["message"] == (f'Operation cannot be fulfilled on configmaps "u": Precondition failed: '
                                        f'UID in precondition: changed, UID in object meta: {uid}')
    assert (await api.get(f"{CM}/u")).json()["metadata"]["uid"] == uid


async def test_generation_is_bumped_when_deletion_starts(api: httpx.AsyncClient) -> None:
    body = deployment("gen")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    created = (await api.post(DEPLOY, json=body)).json()
    assert created["metadata"]["generation"] == 1
    deleting = (await api.delete(f"{DEPLOY}/gen")).json()
    assert deleting["metadata"]["deletionTimestamp"] and deleting["metadata"]["generation"] == 2
    assert (await api.get(f"{DEPLOY}/gen")).json()["metadata"]["generation"] == 2
    await api.patch(f"{DEPLOY}/gen", json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert (await api.get(f"{DEPLOY}/gen")).status_code == 404


async def test_server_side_apply_conflicts_and_force(api: httpx.AsyncClient) -> None:
    url = f"{DEPLOY}/ssa"
    assert (await api.patch(f"{url}?fieldManager=alice", json=deployment("ssa", 2), headers=APPLY)).status_code == 201
    clash = await api.patch(f"{url}?fieldManager=bob", json=deployment("ssa", 3), headers=APPLY)
    assert clash.status_code == 409 and clash.json()["reason"] == "Conflict"
    assert 'conflict with "alice"' in clash.json()["message"] and ".spec.replicas" in clash.json()["message"]
    assert (await api.get(url)).json()["spec"]["replicas"] == 2
    forced = await api.patch(f"{url}?fieldManager=bob&force=true", json=deployment("ssa", 3), headers=APPLY)
    assert forced.status_code == 200 and forced.json()["spec"]["replicas"] == 3
    owners = {m["manager"] for m in forced.json()["metadata"]["managedFields"]
              if "f:replicas" in str(m.get("fieldsV1", {}).get("f:spec", {}))}
    assert owners == {"bob"}
    no_kind = {k: v for k, v in deployment("ssa").items() if k != "kind"}
    missing = await api.patch(f"{url}?fieldManager=carol", json=no_kind, headers=APPLY)
    assert missing.status_code == 400 and "kind" in missing.json()["message"]


async def test_dry_run_on_put_patch_and_subresources(api: httpx.AsyncClient) -> None:
    obj = (await api.post(DEPLOY, json=deployment("dry"))).json()
    rv = obj["metadata"]["resourceVersion"]
    obj["spec"]["replicas"] = 5
    put = await api.put(f"{DEPLOY}/dry", params={"dryRun": "All"}, json=obj)
    assert put.status_code == 200 and put.json()["spec"]["replicas"] == 5
    patch = await api.patch(f"{DEPLOY}/dry", params={"dryRun": "All"}, json={"spec": {"replicas": 6}},
                            headers=MERGE)
    assert patch.status_code == 200 and patch.json()["spec"]["replicas"] == 6
    scale = await api.patch(f"{DEPLOY}/dry/scale", params={"dryRun": "All"}, json={"spec": {"replicas": 7}},
                            headers=MERGE)
    assert scale.status_code == 200 and scale.json()["spec"]["replicas"] == 7
    status = await api.patch(f"{DEPLOY}/dry/status", params={"dryRun": "All"},
                             json={"status": {"replicas": 8}}, headers=MERGE)
    assert status.status_code == 200 and status.json()["status"]["replicas"] == 8
    stored = (await api.get(f"{DEPLOY}/dry")).json()
    assert stored["metadata"]["resourceVersion"] == rv and stored["spec"]["replicas"] == 1
    assert "replicas" not in stored.get("status", {})
    bad = await api.put(f"{DEPLOY}/dry", params={"dryRun": "Bogus"}, json=obj)
    assert bad.status_code == 400


async def test_main_resource_writes_ignore_status(api: httpx.AsyncClient) -> None:
    body = deployment("st")
    body["status"] = {"replicas": 9}
    created = (await api.post(DEPLOY, json=body)).json()
    assert "replicas" not in created.get("status", {})
    created["status"] = {"replicas": 8}
    updated = (await api.put(f"{DEPLOY}/st", json=created)).json()
    assert "replicas" not in updated.get("status", {})
    patched = (await api.patch(f"{DEPLOY}/st", json={"status": {"replicas": 7}}, headers=MERGE)).json()
    assert "replicas" not in patched.get("status", {})
    assert "replicas" not in (await api.get(f"{DEPLOY}/st")).json().get("status", {})


async def test_field_selectors_beyond_name_and_namespace(api: httpx.AsyncClient) -> None:
    pods = "/api/v1/namespaces/default/pods"
    for name, node in (("p1", "n1"), ("p2", "n2"), ("p3", None)):
        spec: dict = {"containers": [{"name": "c", "image": "x"}]}
        if node:
            spec["nodeName"] = node
        assert (await api.post(pods, json={"metadata": {"name": name}, "spec": spec})).status_code == 201
    await api.patch(f"{pods}/p2/status", json={"status": {"phase": "Succeeded"}}, headers=MERGE)

    async def names(selector: str) -> list[str]:
        answer = await api.get(pods, params={"fieldSelector": selector})
        assert answer.status_code == 200, answer.text
        return sorted(item["metadata"]["name"] for item in answer.json()["items"])

    assert await names("spec.nodeName=n1") == ["p1"]
    assert await names("spec.nodeName=") == ["p3"]
    assert await names("spec.nodeName!=n1") == ["p2", "p3"]
    assert await names("status.phase=Succeeded") == ["p2"]
    assert await names("spec.nodeName=n2,status.phase!=Succeeded") == []
    unsupported = await api.get(pods, params={"fieldSelector": "spec.bogus=1"})
    assert unsupported.status_code == 400
    secrets = "/api/v1/namespaces/default/secrets"
    await api.post(secrets, json={"metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
                                  "data": {"tls.crt": "", "tls.key": ""}})
    await api.post(secrets, json={"metadata": {"name": "plain"}, "stringData": {"a": "b"}})
    typed = (await api.get(secrets, params={"fieldSelector": "type=Opaque"})).json()["items"]
    assert [item["metadata"]["name"] for item in typed] == ["plain"]
