"""Strategic merge patch: the patches kubectl's client-side apply and `set image` send."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiokube.api.errors import ApiError
from apiserver.patch import apply_patch
from apiserver.schema import SchemaRegistry


@pytest.fixture(scope="module")
def schemas() -> SchemaRegistry:
    return SchemaRegistry.load()


def deployment(containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, **spec,
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}}


def smp(schemas: SchemaRegistry, original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return apply_patch(original, json.dumps(patch).encode(), "application/strategic-merge-patch+json",
                       group="apps", version="v1", kind="Deployment", schemas=schemas)


def containers_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


def test_reapply_with_new_image_keeps_server_fields(schemas: SchemaRegistry) -> None:
    live = deployment([{"name": "nginx", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                        "terminationMessagePath": "/dev/termination-log"}])
    patch = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"}],
                                            "containers": [{"image": "nginx:1.26", "name": "nginx"}]}}}}
    out = smp(schemas, live, patch)
    assert containers_of(out) == [{"name": "nginx", "image": "nginx:1.26", "imagePullPolicy": "IfNotPresent",
                                   "terminationMessagePath": "/dev/termination-log"}]
    assert containers_of(live)[0]["image"] == "nginx:1.25", "the original must not be modified"


def test_reapply_after_removing_an_env_var(schemas: SchemaRegistry) -> None:
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]
    live = deployment([{"name": "app", "image": "busybox", "env": env}])
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [{"$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                        "env": [{"$patch": "delete", "name": "B"}], "name": "app"}]}}}}
    out = smp(schemas, live, patch)
    assert containers_of(out)[0]["env"] == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]


@pytest.mark.parametrize(("live_names", "patch_items", "order", "expected"), [
    # new item placed per $setElementOrder
    (["a", "b"], [{"name": "c"}], ["a", "c", "b"], ["a", "c", "b"]),
    # reorder only
    (["a", "b"], [], ["b", "a"], ["b", "a"]),
    # server-only item (not in the order list) keeps its live position
    (["a", "s", "b"], [{"name": "b", "image": "x"}], ["a", "b"], ["a", "s", "b"]),
])
def test_set_element_order(schemas: SchemaRegistry, live_names: list[str], patch_items: list[dict[str, Any]],
                           order: list[str], expected: list[str]) -> None:
    live = deployment([{"name": n, "image": "i"} for n in live_names])
    spec: dict[str, Any] = {"$setElementOrder/containers": [{"name": n} for n in order]}
    if patch_items:
        spec["containers"] = patch_items
    out = smp(schemas, live, {"spec": {"template": {"spec": spec}}})
    assert [c["name"] for c in containers_of(out)] == expected


def test_merge_without_order_puts_new_items_first_like_kubernetes(schemas: SchemaRegistry) -> None:
    live = deployment([{"name": "a", "image": "i"}])
    out = smp(schemas, live, {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "j"}]}}}})
    assert [c["name"] for c in containers_of(out)] == ["b", "a"]


def test_retain_keys_on_deployment_strategy(schemas: SchemaRegistry) -> None:
    live = deployment([{"name": "a", "image": "i"}],
                      strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}})
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}}
    out = smp(schemas, live, patch)
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_rejects_fields_not_listed(schemas: SchemaRegistry) -> None:
    live = deployment([{"name": "a", "image": "i"}], strategy={"type": "Recreate"})
    with pytest.raises(ApiError) as err:
        smp(schemas, live, {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}})
    assert err.value.code == 422


def test_null_deletes_and_maps_merge(schemas: SchemaRegistry) -> None:
    live = deployment([{"name": "a", "image": "i"}])
    live["metadata"]["annotations"] = {"keep": "1", "drop": "2"}
    out = smp(schemas, live, {"metadata": {"annotations": {"drop": None, "new": "3"}}})
    assert out["metadata"]["annotations"] == {"keep": "1", "new": "3"}


def test_lists_without_merge_strategy_are_replaced(schemas: SchemaRegistry) -> None:
    live = deployment([{"name": "a", "image": "i", "command": ["sleep", "1"], "args": ["x"]}])
    out = smp(schemas, live, {"spec": {"template": {"spec": {"containers": [{"name": "a", "command": ["true"]}]}}}})
    assert containers_of(out)[0]["command"] == ["true"]
    assert containers_of(out)[0]["args"] == ["x"]


def test_patch_replace_directive_on_list_and_map(schemas: SchemaRegistry) -> None:
    live = deployment([{"name": "a", "image": "i"}, {"name": "b", "image": "j"}])
    out = smp(schemas, live, {"spec": {"template": {"spec": {
        "containers": [{"$patch": "replace"}, {"name": "z", "image": "k"}]}}}})
    assert containers_of(out) == [{"name": "z", "image": "k"}]
    out = smp(schemas, live, {"metadata": {"labels": {"$patch": "replace", "x": "y"}}})
    assert out["metadata"]["labels"] == {"x": "y"}
    out = smp(schemas, live, {"metadata": {"labels": {"$patch": "delete"}}})
    assert out["metadata"]["labels"] == {}


def test_delete_from_primitive_list_and_union(schemas: SchemaRegistry) -> None:
    # Pod finalizers have strategy merge (a set of strings).
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a", "b", "c"]}}
    body = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"], "finalizers": ["d"]}}
    out = apply_patch(pod, json.dumps(body).encode(), "application/strategic-merge-patch+json",
                      group="", version="v1", kind="Pod", schemas=schemas)
    assert sorted(out["metadata"]["finalizers"]) == ["a", "c", "d"]


def test_set_image_style_patch_on_pod(schemas: SchemaRegistry) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "old", "ports": [{"containerPort": 80}]}]}}
    body = {"spec": {"containers": [{"name": "c", "image": "new", "ports": [{"containerPort": 81}]}]}}
    out = apply_patch(pod, json.dumps(body).encode(), "application/strategic-merge-patch+json",
                      group="", version="v1", kind="Pod", schemas=schemas)
    container = out["spec"]["containers"][0]
    assert container["image"] == "new"
    assert [p["containerPort"] for p in container["ports"]] == [81, 80]  # ports merge on containerPort


def test_malformed_bodies(schemas: SchemaRegistry) -> None:
    live = deployment([{"name": "a", "image": "i"}])
    with pytest.raises(ApiError) as err:
        apply_patch(live, b"{not json", "application/strategic-merge-patch+json", group="apps", version="v1",
                    kind="Deployment", schemas=schemas)
    assert err.value.code == 400
    with pytest.raises(ApiError) as err:
        apply_patch(live, b"{}", "application/xml", group="apps", version="v1", kind="Deployment",
                    schemas=schemas)
    assert err.value.code == 415
    with pytest.raises(ApiError) as err:
        smp(schemas, live, {"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}})
    assert err.value.code == 422
