"""Schema lookup, validation (errors and unknown fields) and patch metadata."""

from __future__ import annotations

import time
from typing import Any

import pytest

from apiserver.schema import SchemaRegistry, find_duplicate_fields, unknown_field_warning, unknown_fields_message


@pytest.fixture(scope="module")
def schemas() -> SchemaRegistry:
    return SchemaRegistry.load()


def pod(**container: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "creationTimestamp": "2024-01-01T00:00:00Z", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", **container}]}}


def test_definition_lookup(schemas: SchemaRegistry) -> None:
    assert schemas.definition_name_for("apps", "v1", "Deployment") == "io.k8s.api.apps.v1.Deployment"
    assert schemas.definition_for("", "v1", "Pod") is not None
    assert schemas.definition_for("nope", "v1", "Nothing") is None
    assert SchemaRegistry.load() is schemas


def test_valid_pod_with_quantities_and_int_or_string(schemas: SchemaRegistry) -> None:
    obj = pod(resources={"limits": {"cpu": "100m", "memory": 1024}},
              livenessProbe={"httpGet": {"port": "http", "path": "/"}},
              readinessProbe={"tcpSocket": {"port": 8080}})
    result = schemas.validate("", "v1", "Pod", obj)
    assert result.ok and result.unknown == []


@pytest.mark.parametrize(("container", "field", "reason"), [
    ({"ports": [{"containerPort": "80"}]}, "spec.containers[0].ports[0].containerPort", "FieldValueTypeInvalid"),
    ({"ports": [{"containerPort": 2**40}]}, "spec.containers[0].ports[0].containerPort", "FieldValueInvalid"),
    ({"stdin": "yes"}, "spec.containers[0].stdin", "FieldValueTypeInvalid"),
    ({"command": "sleep 1"}, "spec.containers[0].command", "FieldValueTypeInvalid"),
    ({"livenessProbe": {"tcpSocket": {"port": 1.5}}}, "spec.containers[0].livenessProbe.tcpSocket.port",
     "FieldValueTypeInvalid"),
    ({"env": [{"value": "x"}]}, "spec.containers[0].env[0].name", "FieldValueRequired"),
])
def test_type_errors_become_causes(schemas: SchemaRegistry, container: dict[str, Any], field: str,
                                   reason: str) -> None:
    result = schemas.validate("", "v1", "Pod", pod(**container))
    assert [(e["field"], e["reason"]) for e in result.errors] == [(field, reason)]


def test_enum_and_format(schemas: SchemaRegistry) -> None:
    bad_kind = pod()
    bad_kind["apiVersion"] = "v2"
    result = schemas.validate("", "v1", "Pod", bad_kind)
    assert result.errors[0]["reason"] == "FieldValueNotSupported"
    assert result.errors[0]["message"] == 'Unsupported value: "v2": supported values: "v1"'
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "!!notbase64"}}
    assert schemas.validate("", "v1", "Secret", secret).errors[0]["field"] == "data[k]"
    stamp = pod()
    stamp["metadata"]["creationTimestamp"] = "yesterday"
    assert schemas.validate("", "v1", "Pod", stamp).errors[0]["field"] == "metadata.creationTimestamp"


def test_unknown_fields(schemas: SchemaRegistry) -> None:
    obj = pod(foo=1)
    obj["spec"]["bar"] = {"x": 1}
    obj["metadata"]["annotations"] = {"free": "form"}
    result = schemas.validate("", "v1", "Pod", obj, field_validation="Strict")
    assert result.ok
    assert result.unknown == [".spec.containers[0].foo", ".spec.bar"]
    assert schemas.validate("", "v1", "Pod", obj, field_validation="Ignore").unknown == []
    assert unknown_fields_message(result.unknown) == (
        'strict decoding error: unknown field "spec.containers[0].foo", unknown field "spec.bar"')
    assert unknown_fields_message([".spec.foo"], kind="Deployment", version="v1") == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.foo"')
    assert unknown_field_warning(".spec.foo") == 'unknown field "spec.foo"'


def test_null_values_and_free_form_objects_are_accepted(schemas: SchemaRegistry) -> None:
    obj = pod()
    obj["metadata"]["labels"] = None
    obj["spec"]["nodeSelector"] = None
    obj["metadata"]["managedFields"] = [{"manager": "m", "fieldsV1": {"f:spec": {"f:anything": {}}}}]
    result = schemas.validate("", "v1", "Pod", obj)
    assert result.ok and result.unknown == []


def test_nulls_settle_as_a_typed_decode_leaves_them(schemas: SchemaRegistry) -> None:
    obj = pod()
    obj["spec"]["nodeSelector"] = None  # a null field: dropped
    obj["spec"]["tolerations"] = [None, {"key": "k", "operator": "Exists"}]  # a null struct item: {}
    obj["spec"]["containers"][0]["args"] = ["a", None]  # a null string item: ""
    obj["metadata"]["labels"] = {"a": None}  # a null map value: ""
    obj["metadata"]["annotations"] = None
    obj["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": None}]
    result = schemas.validate("", "v1", "Pod", obj)
    assert result.ok and result.unknown == []
    result.settle_nulls()
    assert "nodeSelector" not in obj["spec"] and "annotations" not in obj["metadata"]
    assert obj["spec"]["tolerations"] == [{}, {"key": "k", "operator": "Exists"}]
    assert obj["spec"]["containers"][0]["args"] == ["a", ""]
    assert obj["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]
    assert obj["metadata"]["labels"] == {"a": ""}
    free_form = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "managedFields": [
        {"manager": "m", "fieldsV1": {"f:x": None}}]}, "involvedObject": {}}
    kept = schemas.validate("", "v1", "Event", free_form)
    kept.settle_nulls()
    assert free_form["metadata"]["managedFields"][0]["fieldsV1"] == {"f:x": None}  # free-form data is data


def test_duplicate_fields() -> None:
    assert find_duplicate_fields(b'{"spec": {"replicas": 1, "replicas": 2}}') == ["replicas"]
    assert find_duplicate_fields(b"not json") == []


def test_patch_meta(schemas: SchemaRegistry) -> None:
    merge_key, strategies, list_type, keys = schemas.patch_meta("io.k8s.api.core.v1.PodSpec", "containers")
    assert (merge_key, strategies, list_type, keys) == ("name", {"merge"}, "map", ["name"])
    meta = schemas.patch_meta("io.k8s.api.apps.v1.DeploymentSpec", "strategy")
    assert meta.strategies == {"retainKeys"}
    assert "properties" in meta.schema
    ports = schemas.patch_meta("io.k8s.api.core.v1.ServiceSpec", "ports")
    assert ports.merge_key == "port" and ports.list_map_keys == ("port", "protocol")
    assert schemas.patch_meta("io.k8s.api.core.v1.PodSpec", "nope").merge_key is None


def test_validation_is_fast(schemas: SchemaRegistry) -> None:
    obj = pod(env=[{"name": "A", "value": "1"}], ports=[{"containerPort": 80}])
    schemas.validate("", "v1", "Pod", obj)
    started = time.perf_counter()
    for _ in range(200):
        schemas.validate("", "v1", "Pod", obj)
    per_call = (time.perf_counter() - started) / 200
    assert per_call < 0.002, f"{per_call * 1e6:.0f} µs per Pod validation"
