"""The one-walk field summary, the create's owned trie and the cached patch metadata give exactly what the
separate walks give."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from apiserver.patch.fieldpath import SchemaWalker, to_fields_v1
from apiserver.schema import FieldMeta, SchemaRegistry

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {}},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [
                              {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                               "env": [{"name": "A", "value": "1"}], "args": ["-x", "-y"]},
                              {"name": "side", "image": "busybox", "resources": {"limits": {"cpu": "1"}}}],
                              "tolerations": [], "nodeSelector": {"disk": "ssd"}}}},
    "status": {"conditions": [{"type": "Available", "status": "True"}]},
}
SERVICE: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "finalizers": ["a", "b"]},
                           "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "clusterIPs": ["10.96.0.9"],
                                    "selector": {"app": "x"}}}


@pytest.mark.parametrize(("obj", "group", "version"), [(DEPLOYMENT, "apps", "v1"), (SERVICE, "", "v1")])
def test_summary_equals_the_three_walks(obj: dict[str, Any], group: str, version: str) -> None:
    schemas = SchemaRegistry.load()
    walker = SchemaWalker(schemas)
    root = FieldMeta(schema=schemas.definition_for(group, version, obj["kind"]) or {})
    summary = walker.summary(root, obj)
    assert summary.leaves == walker.leaf_values(root, obj)
    assert summary.paths == walker.all_paths(root, obj)
    assert summary.members == walker.member_nodes(root, obj)


POD_WITH_ODDITIES: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"labels": {}, "finalizers": ["x", "x", "y"], "ownerReferences": [
        {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1"}]},
    "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "E"}, {"name": "E", "value": "2"}],
                             "command": [], "securityContext": None},
                            {"name": "d", "image": "i", "volumeMounts": [{"name": "v", "mountPath": "/m"}]}],
             "volumes": [{"name": "v", "emptyDir": {}}], "nodeSelector": {}, "hostNetwork": False,
             "readinessGates": ["not-a-dict"]},
}
CONFIGMAP: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"annotations": {"a": "b"}},
                             "data": {"k": "v", "empty": ""}, "binaryData": {}}


@pytest.mark.parametrize(("obj", "group", "version"), [
    (DEPLOYMENT, "apps", "v1"), (SERVICE, "", "v1"), (POD_WITH_ODDITIES, "", "v1"), (CONFIGMAP, "", "v1"),
    ({"apiVersion": "v1", "kind": "ConfigMap"}, "", "v1"), ({}, "", "v1")])
def test_owned_trie_is_the_fields_of_the_leaves_and_members(obj: dict[str, Any], group: str, version: str) -> None:
    schemas = SchemaRegistry.load()
    walker = SchemaWalker(schemas)
    root = FieldMeta(schema=schemas.definition_for(group, version, obj.get("kind", "ConfigMap")) or {})
    summary = walker.summary(root, obj)
    owned = {path for path in summary.leaves.keys() | summary.members if path}
    expected = to_fields_v1(owned)
    assert walker.owned_trie(root, obj) == expected
    # Key order too: the stored trie is compared byte for byte by clients that diff managedFields.
    assert repr(walker.owned_trie(root, obj)) == repr(expected)


def test_patch_meta_is_cached_for_schema_nodes_only() -> None:
    schemas = SchemaRegistry.load()
    pod_spec = schemas.definitions["io.k8s.api.core.v1.PodSpec"]
    first = schemas.patch_meta(pod_spec, "containers")
    assert schemas.patch_meta(pod_spec, "containers") is first
    assert first.merge_key == "name" and "merge" in first.strategies
    transient = {"properties": {"x": {"type": "string"}}}
    schemas.patch_meta(transient, "x")
    assert (id(transient), "x") not in schemas._patch_meta_cache


def test_node_kinds_are_remembered_per_shape_of_value() -> None:
    """A field's classification is kept on its FieldMeta, separately for a list, a dict and a scalar value
    (a body may send any of them where the schema wants one), and answered from there the next time."""
    walker = SchemaWalker(SchemaRegistry.load())
    item = {"type": "object", "properties": {"name": {"type": "string"}}}
    containers = FieldMeta(merge_key="name", list_type="map", list_map_keys=("name",),
                           schema={"type": "array", "items": item}, item_schema=item)
    labels = FieldMeta(schema={"type": "object", "additionalProperties": {"type": "string"}})
    assert containers.nodes == {} and labels.nodes == {}
    as_list = walker.node(containers, [{"name": "a"}])
    assert (as_list.kind, as_list.keys, as_list.schema) == ("list-map", ("name",), item)
    assert walker.node(containers, {"name": "a"}).kind == "atomic"  # a dict where the schema wants a list
    assert walker.node(containers, "text").kind == "scalar"
    assert walker.node(labels, {"app": "web"}).kind == "map"
    assert walker.node(labels, ["x"]).kind == "list-atomic"
    assert set(containers.nodes) == {0, 1, 2} and set(labels.nodes) == {1, 2}
    assert walker.node(containers, [{"name": "b"}]) is as_list  # remembered, not classified again
    # A copy made with other list semantics starts without the remembered answers.
    assert walker.node(dataclasses.replace(containers, list_type="atomic"), [{"name": "a"}]).kind == "list-atomic"
