"""The one-walk field summary and the cached patch metadata give exactly what the separate walks give."""

from __future__ import annotations

from typing import Any

import pytest

from apiserver.patch.fieldpath import SchemaWalker
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


def test_patch_meta_is_cached_for_schema_nodes_only() -> None:
    schemas = SchemaRegistry.load()
    pod_spec = schemas.definitions["io.k8s.api.core.v1.PodSpec"]
    first = schemas.patch_meta(pod_spec, "containers")
    assert schemas.patch_meta(pod_spec, "containers") is first
    assert first.merge_key == "name" and "merge" in first.strategies
    transient = {"properties": {"x": {"type": "string"}}}
    schemas.patch_meta(transient, "x")
    assert (id(transient), "x") not in schemas._patch_meta_cache
