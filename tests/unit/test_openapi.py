"""OpenAPI v3 index and group-version documents."""

from __future__ import annotations

import json
from typing import Any

from aiokube.api import resources
from apiserver.openapi import openapi_v3_group_version, openapi_v3_hash, openapi_v3_index


def test_index_lists_every_group_version() -> None:
    index = openapi_v3_index("/openapi/v3")
    expected = {f"apis/{g}/{v}" if g else f"api/{v}" for g, vs in resources.group_versions().items() for v in vs}
    assert set(index["paths"]) == expected
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert url == f"/openapi/v3/apis/apps/v1?hash={openapi_v3_hash('apps', 'v1')}"
    assert openapi_v3_index() == index  # stable


def test_patch_operations_carry_gvk_and_field_validation() -> None:
    doc = openapi_v3_group_version("apps", "v1")
    assert doc["openapi"].startswith("3.0")
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert {"fieldValidation", "fieldManager", "force"} <= {p["name"] for p in patch["parameters"]}
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
    assert scale["x-kubernetes-group-version-kind"]["kind"] == "Scale"


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        own = {node["$ref"]} if "$ref" in node else set()
        return own.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def test_components_are_complete_and_openapi_3_0() -> None:
    for group, versions in resources.group_versions().items():
        for version in versions:
            doc = openapi_v3_group_version(group, version)
            names = set(doc["components"]["schemas"])
            for ref in _refs(doc):
                assert ref.startswith("#/components/schemas/"), ref
                assert ref.removeprefix("#/components/schemas/") in names, ref
            text = json.dumps(doc)
            assert "$defs" not in text
            assert '"type": [' not in text  # 3.0 has single types
    apps = openapi_v3_group_version("apps", "v1")["components"]["schemas"]
    containers = apps["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    strategy = apps["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}]
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    assert apps["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    assert apps["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"][0]["kind"] == "Deployment"


def test_core_document_has_namespaced_and_cluster_paths() -> None:
    doc = openapi_v3_group_version("", "v1")
    assert "/api/v1/pods" in doc["paths"]
    assert "/api/v1/namespaces/{namespace}/pods/{name}/status" in doc["paths"]
    assert "/api/v1/nodes/{name}" in doc["paths"]
    assert openapi_v3_group_version("", "v1") is doc  # cached
