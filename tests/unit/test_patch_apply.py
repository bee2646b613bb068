"""Server-side apply and managedFields bookkeeping."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from aiokube.api.errors import ApiError
from apiserver.patch import server_side_apply, update_managed_fields
from apiserver.patch.fieldpath import from_fields_v1, to_fields_v1
from apiserver.schema import SchemaRegistry

NOW = "2024-05-01T10:00:00Z"


@pytest.fixture(scope="module")
def schemas() -> SchemaRegistry:
    return SchemaRegistry.load()


def config(replicas: int | None = 2, image: str = "nginx:1.25", env: list[dict[str, str]] | None = None,
           labels: dict[str, str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "nginx", "image": image}
    if env is not None:
        container["env"] = env
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [container]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    metadata: dict[str, Any] = {"name": "web", "namespace": "default"}
    if labels is not None:
        metadata["labels"] = labels
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def ssa(schemas: SchemaRegistry, live: dict[str, Any] | None, applied: dict[str, Any], manager: str = "kubectl",
        force: bool = False) -> dict[str, Any]:
    return server_side_apply(live, applied, manager=manager, force=force, group="apps", version="v1",
                             kind="Deployment", schemas=schemas, now=NOW)


def entry(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    return next(e for e in obj["metadata"]["managedFields"] if e["manager"] == manager)


def test_apply_creates_and_records_managed_fields(schemas: SchemaRegistry) -> None:
    out = ssa(schemas, None, config())
    assert out["spec"]["replicas"] == 2
    mf = entry(out, "kubectl")
    assert {k: mf[k] for k in ("manager", "operation", "apiVersion", "time", "fieldsType")} == {
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": NOW, "fieldsType": "FieldsV1"}
    assert mf["fieldsV1"] == {
        "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {'k:{"name":"nginx"}': {".": {}, "f:image": {}, "f:name": {}}}}}}}


def test_conflict_with_client_side_apply_manager_and_force(schemas: SchemaRegistry) -> None:
    created = config(replicas=3)
    update_managed_fields(None, created, manager="kubectl-client-side-apply", operation="Update",
                          api_version="apps/v1", now=NOW, schemas=schemas)
    with pytest.raises(ApiError) as err:
        ssa(schemas, created, config(replicas=5))
    assert err.value.code == 409
    assert err.value.message == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                                 'using apps/v1: .spec.replicas')
    assert err.value.details["causes"] == [{"reason": "FieldManagerConflict", "field": ".spec.replicas",
                                            "message": 'conflict with "kubectl-client-side-apply" using apps/v1'}]
    # Same value: shared ownership, no conflict.
    same = ssa(schemas, created, config(replicas=3))
    assert ("f:spec", "f:replicas") in from_fields_v1(entry(same, "kubectl")["fieldsV1"])
    assert ("f:spec", "f:replicas") in from_fields_v1(entry(same, "kubectl-client-side-apply")["fieldsV1"])
    # Force takes ownership.
    forced = ssa(schemas, created, config(replicas=5), force=True)
    assert forced["spec"]["replicas"] == 5
    assert ("f:spec", "f:replicas") not in from_fields_v1(entry(forced, "kubectl-client-side-apply")["fieldsV1"])


def test_two_conflicts_message(schemas: SchemaRegistry) -> None:
    live = ssa(schemas, None, config(replicas=1, image="a"), manager="other")
    with pytest.raises(ApiError) as err:
        ssa(schemas, live, config(replicas=2, image="b"))
    assert err.value.message.startswith('Apply failed with 2 conflicts: conflicts with "other":\n- ')
    assert len(err.value.details["causes"]) == 2


def test_fields_no_longer_applied_are_removed(schemas: SchemaRegistry) -> None:
    live = ssa(schemas, None, config(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                                     labels={"x": "1"}))
    out = ssa(schemas, live, config(env=[{"name": "A", "value": "1"}], replicas=None))
    container = out["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "A", "value": "1"}]
    assert "replicas" not in out["spec"]
    assert "labels" not in out["metadata"]


def test_fields_owned_by_another_manager_survive_removal(schemas: SchemaRegistry) -> None:
    live = ssa(schemas, None, config(replicas=4))
    scaled = copy.deepcopy(live)
    update_managed_fields(live, scaled, manager="kube-controller-manager", operation="Update",
                          api_version="apps/v1", now=NOW, schemas=schemas)
    # Both own replicas (the controller wrote the same value? no: make it write a new value).
    scaled2 = copy.deepcopy(live)
    scaled2["spec"]["replicas"] = 6
    update_managed_fields(live, scaled2, manager="kubectl-scale", operation="Update", subresource="scale",
                          api_version="apps/v1", now=NOW, schemas=schemas)
    assert entry(scaled2, "kubectl-scale")["subresource"] == "scale"
    assert ("f:spec", "f:replicas") not in from_fields_v1(entry(scaled2, "kubectl")["fieldsV1"])
    out = ssa(schemas, scaled2, config(replicas=None))
    assert out["spec"]["replicas"] == 6


def test_associative_list_merge_keeps_other_containers(schemas: SchemaRegistry) -> None:
    live = ssa(schemas, None, config())
    sidecar = config()
    sidecar["spec"]["template"]["spec"]["containers"] = [{"name": "sidecar", "image": "busybox"}]
    out = ssa(schemas, live, sidecar, manager="injector")
    names = [c["name"] for c in out["spec"]["template"]["spec"]["containers"]]
    assert names == ["nginx", "sidecar"]


def test_update_managed_fields_shape_on_create_and_update(schemas: SchemaRegistry) -> None:
    obj = config(labels={"app": "web"})
    obj["metadata"]["uid"] = "u1"
    update_managed_fields(None, obj, manager="kubectl-create", operation="Update", api_version="apps/v1",
                          now=NOW, schemas=schemas)
    (mf,) = obj["metadata"]["managedFields"]
    assert mf["manager"] == "kubectl-create" and mf["operation"] == "Update" and "subresource" not in mf
    fields = mf["fieldsV1"]
    assert "f:uid" not in fields["f:metadata"] and "f:name" not in fields["f:metadata"]
    assert fields["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}
    assert fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}'] == {
        ".": {}, "f:image": {}, "f:name": {}}
    # An update by another manager takes the changed field; the first keeps the rest.
    new = copy.deepcopy(obj)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    update_managed_fields(obj, new, manager="kubectl-set", operation="Update", api_version="apps/v1",
                          now="2024-05-01T10:05:00Z", schemas=schemas)
    image = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"nginx"}', "f:image")
    assert image in from_fields_v1(entry(new, "kubectl-set")["fieldsV1"])
    assert image not in from_fields_v1(entry(new, "kubectl-create")["fieldsV1"])
    assert [e["manager"] for e in new["metadata"]["managedFields"]] == ["kubectl-create", "kubectl-set"]


def test_fields_v1_round_trip() -> None:
    fields = {("f:a",), ("f:a", "f:b"), ("f:c", 'k:{"name":"x"}', "f:d"), ("f:e", 'v:"s"')}
    trie = to_fields_v1(fields)
    assert trie["f:a"] == {".": {}, "f:b": {}}
    assert from_fields_v1(trie) == fields


def test_apply_rejects_wrong_kind_and_missing_manager(schemas: SchemaRegistry) -> None:
    bad = config()
    bad["kind"] = "ReplicaSet"
    with pytest.raises(ApiError) as err:
        ssa(schemas, None, bad)
    assert err.value.code == 400
    with pytest.raises(ApiError):
        ssa(schemas, None, config(), manager="")
