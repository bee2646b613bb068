"""JSON patch (RFC 6902) and JSON merge patch (RFC 7386)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiokube.api.errors import ApiError
from apiserver.patch import apply_patch
from apiserver.patch.merge_patch import merge_patch
from apiserver.schema import SchemaRegistry

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}},
      "data": {"x": "1", "y": "2"}}


def patch(body: Any, content_type: str) -> dict[str, Any]:
    return apply_patch(CM, json.dumps(body).encode(), content_type, group="", version="v1", kind="ConfigMap",
                       schemas=SchemaRegistry.load())


@pytest.mark.parametrize(("original", "body", "expected"), [
    ({"a": 1}, {"a": None}, {}),
    ({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}, {"a": {"c": 2, "d": 3}}),
    ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
    ({"a": 1}, {"b": {"c": None}}, {"a": 1, "b": {}}),
    ({"a": "x"}, {"a": {"b": 1}}, {"a": {"b": 1}}),
])
def test_merge_patch_rfc7386(original: Any, body: Any, expected: Any) -> None:
    assert merge_patch(original, body) == expected


def test_merge_patch_through_entry_point_labels() -> None:
    out = patch({"metadata": {"labels": {"a": None, "b": "2"}}}, "application/merge-patch+json")
    assert out["metadata"]["labels"] == {"b": "2"}
    assert CM["metadata"]["labels"] == {"a": "1"}


def test_json_patch_ops() -> None:
    out = patch([{"op": "replace", "path": "/data/x", "value": "9"}, {"op": "remove", "path": "/data/y"},
                 {"op": "add", "path": "/metadata/labels/b", "value": "2"}], "application/json-patch+json")
    assert out["data"] == {"x": "9"}
    assert out["metadata"]["labels"] == {"a": "1", "b": "2"}


def test_json_patch_failed_test_is_422() -> None:
    with pytest.raises(ApiError) as err:
        patch([{"op": "test", "path": "/data/x", "value": "nope"}], "application/json-patch+json")
    assert err.value.code == 422


def test_json_patch_missing_path_is_422_and_garbage_is_400() -> None:
    with pytest.raises(ApiError) as err:
        patch([{"op": "remove", "path": "/nope/x"}], "application/json-patch+json")
    assert err.value.code == 422
    with pytest.raises(ApiError) as err:
        patch({"op": "remove"}, "application/json-patch+json")
    assert err.value.code == 400
    with pytest.raises(ApiError) as err:
        patch([{"op": "frobnicate", "path": "/a"}], "application/json-patch+json")
    assert err.value.code == 400
