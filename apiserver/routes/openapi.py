"""/openapi/v3 (index and per group-version documents, from apiserver.openapi) and /openapi/v2 (404: kubectl
asks it only as protobuf, which is not served)."""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import orjson

from aiokube.api import resources
from aiokube.api.errors import ApiError
from aiokube.api.types import Obj


def _minimal_group_version(group: str, version: str) -> Obj:
    """What kubectl needs when the full documents are unavailable: each kind's PATCH operation with its GVK
    and the fieldValidation parameter (so kubectl leaves validation to the server), no schemas."""
    paths: Obj = {}
    for info in resources.RESOURCES:
        if info.group == group and info.version == version:
            patch = {"x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": info.kind},
                     "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}]}
            paths[info.path("{namespace}" if info.namespaced else None, "{name}")] = {"patch": patch}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths,
            "components": {"schemas": {}}}


@cache
def group_version_document(group: str, version: str) -> bytes:
    try:
        from apiserver.openapi import openapi_v3_group_version
    except ImportError:
        return orjson.dumps(_minimal_group_version(group, version))
    doc: Any = openapi_v3_group_version(group, version)
    return doc if isinstance(doc, bytes) else orjson.dumps(doc)


def _path_of(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@cache
def index_document() -> bytes:
    try:
        from apiserver.openapi import openapi_v3_index
    except ImportError:
        paths = {}
        for group, versions in resources.group_versions().items():
            for version in versions:
                digest = hashlib.sha256(group_version_document(group, version)).hexdigest()[:32].upper()
                path = _path_of(group, version)
                paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
        return orjson.dumps({"paths": paths})
    doc: Any = openapi_v3_index()
    return doc if isinstance(doc, bytes) else orjson.dumps(doc)


def document_for(path: str) -> bytes:
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "api":
        group, version = "", parts[1]
    elif len(parts) == 3 and parts[0] == "apis":
        group, version = parts[1], parts[2]
    else:
        raise ApiError(404, f"the server could not find the requested resource (openapi/v3/{path})", "NotFound")
    if version not in resources.group_versions().get(group, []):
        raise ApiError(404, f"the server could not find the requested resource (openapi/v3/{path})", "NotFound")
    return group_version_document(group, version)
