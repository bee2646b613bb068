"""The create path's shortcuts give exactly what the general code gives: managedFields recorded on create
(a walk of the tracked part only) and RFC 3339 timestamps (time.gmtime, last second remembered)."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from apiserver.handlers.common import now_rfc3339
from apiserver.patch import update_managed_fields
from apiserver.rfc3339 import format_seconds
from apiserver.schema import SchemaRegistry

NOW = 1_700_000_000.25

OBJECTS: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "ConfigMap",
     "metadata": {"name": "a", "namespace": "default", "uid": "u", "creationTimestamp": "2023-11-14T22:13:20Z",
                  "labels": {"app": "x"}, "annotations": {}},
     "data": {"v": "x" * 100, "w": ""}},
    {"apiVersion": "v1", "kind": "Pod",
     "metadata": {"name": "p", "namespace": "default", "uid": "u", "generateName": "p-", "finalizers": ["a/b"],
                  "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "1"}]},
     "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                              "env": [{"name": "A", "value": "1"}], "resources": {}}],
              "nodeSelector": {"k": "v"}, "tolerations": [{"key": "t", "operator": "Exists"}]}},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "d", "namespace": "default", "generation": 1},
     "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
              "template": {"metadata": {"labels": {"app": "d"}},
                           "spec": {"containers": [{"name": "c", "image": "i"}]}}}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "only-identity", "uid": "u"}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {}, "type": "Opaque"},
    {"apiVersion": "example.com/v1", "kind": "Unknown", "metadata": {"name": "u"}, "spec": {"a": {"b": [1, 2]}}},
]


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda obj: obj["kind"])
def test_create_records_the_same_managed_fields_as_the_general_path(obj: dict[str, Any]) -> None:
    schemas = SchemaRegistry.load()
    created, general = copy.deepcopy(obj), copy.deepcopy(obj)
    update_managed_fields(None, created, manager="kubectl-create", api_version=obj["apiVersion"], now=NOW,
                          schemas=schemas)
    # An empty old object takes the general diff (nothing before, so the writer gains every tracked field).
    update_managed_fields({}, general, manager="kubectl-create", api_version=obj["apiVersion"], now=NOW,
                          schemas=schemas)
    assert created == general
    assert {k: v for k, v in created.items() if k != "metadata"} == {k: v for k, v in obj.items() if k != "metadata"}


def test_a_create_with_only_identity_fields_records_no_entry() -> None:
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "uid": "u", "managedFields": None}}
    update_managed_fields(None, obj, manager="m", api_version="v1", now=NOW, schemas=SchemaRegistry.load())
    assert "managedFields" not in obj["metadata"]


def test_a_create_records_the_writers_leaves_and_members_at_the_given_time() -> None:
    obj = copy.deepcopy(OBJECTS[0])
    update_managed_fields(None, obj, manager="m", api_version="v1", now=NOW, schemas=SchemaRegistry.load())
    assert obj["metadata"]["managedFields"] == [{
        "manager": "m", "operation": "Update", "apiVersion": "v1", "time": "2023-11-14T22:13:20Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {".": {}, "f:v": {}, "f:w": {}},
                     "f:metadata": {"f:annotations": {}, "f:labels": {".": {}, "f:app": {}}}}}]


def test_timestamps_match_datetime_formatting() -> None:
    rng = random.Random(7)
    stamps = [0.0, 0.999, 59.5, 951_782_400.0, 253_402_300_799.0, -0.5] + [rng.uniform(0, 253_402_300_799)
                                                                           for _ in range(2000)]
    for stamp in stamps:
        expected = datetime.fromtimestamp(stamp // 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert format_seconds(stamp) == expected
        assert format_seconds(stamp) == expected  # the remembered second
    assert now_rfc3339(1e15) == "9999-12-31T23:59:59Z"


def test_compare_and_put_is_the_transaction_built_from_separate_messages() -> None:
    from aetcd import rpc

    from apiserver.storage.etcd import _compare_and_put

    key, value = b"/registry/configmaps/default/a", b"x" * 1700
    for revision in (0, 42):
        expected = rpc.TxnRequest(
            compare=[rpc.Compare(key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=revision)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value))])
        assert _compare_and_put(key, revision, value) == expected
