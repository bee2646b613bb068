"""OpenAPI v3 documents: the `/openapi/v3` index and one document per group-version.

kubectl reads these for `create -f`/`apply -f` (does the server take `fieldValidation`? → it sends
`?fieldValidation=Strict` and leaves validation to us) and for client-side apply, which computes strategic
merge patches from `components.schemas` (merge keys and strategies). So each group-version document has
- `paths` for every resource of the group-version (collection, item, cluster-wide list, subresources) whose
  operations carry `x-kubernetes-group-version-kind`, `x-kubernetes-action` and the write parameters
  (`fieldValidation`, `fieldManager`, `dryRun`, `force` on patch);
- a complete `components.schemas`: every definition reachable from the served kinds, converted from the bundled
  JSON Schema (2020-12) to OpenAPI 3.0 the way Kubernetes writes it (`$ref` with siblings wrapped in `allOf`,
  single `type`s, IntOrString as `format: int-or-string`).
Documents are built once per process and cached; the hash is the SHA-512 of the canonical JSON, as
Kubernetes computes it.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from aiokube.api import resources
from aiokube.api.resources import ResourceInfo
from apiserver.schema import KUBERNETES_VERSION, SchemaRegistry

_COMPONENTS = "#/components/schemas/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_ALWAYS_INCLUDED = tuple(_META + n for n in ("Status", "DeleteOptions", "Patch", "WatchEvent", "APIResourceList"))
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


def group_version_path(group: str, version: str) -> str:
    """The index key of a group-version: `api/v1`, `apis/apps/v1`."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_index(server_relative_base: str = "/openapi/v3") -> dict[str, Any]:
    """`GET /openapi/v3`: every served group-version with its content-addressed URL."""
    base = server_relative_base.rstrip("/")
    paths = {}
    for group, versions in resources.group_versions().items():
        for version in versions:
            key = group_version_path(group, version)
            paths[key] = {"serverRelativeURL": f"{base}/{key}?hash={openapi_v3_hash(group, version)}"}
    return {"paths": paths}


@cache
def openapi_v3_hash(group: str, version: str) -> str:
    document = openapi_v3_group_version(group, version)
    return hashlib.sha512(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest().upper()


@cache
def openapi_v3_group_version(group: str, version: str) -> dict[str, Any]:
    """`GET /openapi/v3/apis/<group>/<version>`; raises KeyError for a group-version that is not served."""
    served = [r for r in resources.RESOURCES if r.group == group and r.version == version]
    if not served:
        raise KeyError(f"group-version {group}/{version} is not served")
    schemas = SchemaRegistry.load()
    paths: dict[str, Any] = {}
    roots: list[str] = list(_ALWAYS_INCLUDED)
    for info in served:
        for name in (_definition(schemas, info.group, info.version, info.kind),
                     _definition(schemas, info.group, info.version, info.kind + "List")):
            if name:
                roots.append(name)
        for sub_kind, sub_group, sub_version, _verbs in info.subresources.values():
            name = _definition(schemas, sub_group or info.group, sub_version or info.version, sub_kind)
            if name:
                roots.append(name)
        paths.update(_resource_paths(schemas, info))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": {name: _convert(schemas.definitions[name])
                                   for name in sorted(_closure(schemas, roots))}},
    }


def _definition(schemas: SchemaRegistry, group: str, version: str, kind: str) -> str | None:
    return schemas.definition_name_for(group, version, kind)


def _closure(schemas: SchemaRegistry, roots: list[str]) -> set[str]:
    """Every definition reachable from the roots through $refs."""
    seen: set[str] = set()
    pending = [r for r in roots if r in schemas.definitions]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(ref for ref in _refs(schemas.definitions[name]) if ref not in seen)
    return seen


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"].removeprefix("#/$defs/")] if isinstance(node.get("$ref"), str) else []
        for key, value in node.items():
            if key != "$ref":
                out.extend(_refs(value))
        return out
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _convert(node: Any) -> Any:
    """JSON Schema 2020-12 (as bundled) → OpenAPI 3.0 schema object."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = ref.removeprefix("#/$defs/")
        if target == _INT_OR_STRING:
            inline: dict[str, Any] = {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True}
            return {**inline, **{k: _convert(v) for k, v in node.items() if k != "$ref"}}
        siblings = {k: _convert(v) for k, v in node.items() if k != "$ref"}
        pointer = {"$ref": _COMPONENTS + target}
        # OpenAPI 3.0 ignores siblings of a $ref; Kubernetes wraps the reference in allOf to keep them.
        return {"allOf": [pointer], **siblings} if siblings else pointer
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$schema", "$id"):
            continue
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) == 1:
                out["type"] = types[0]
            continue
        if key == "oneOf" and _is_int_or_string(value):
            out.update({"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True})
            continue
        if key == "properties":
            out[key] = {name: _convert(sub) for name, sub in value.items()}
            continue
        out[key] = _convert(value)
    return out


def _is_int_or_string(alternatives: Any) -> bool:
    types: set[Any] = set()
    for alternative in alternatives if isinstance(alternatives, list) else []:
        value = alternative.get("type") if isinstance(alternative, dict) else None
        types.update(value if isinstance(value, list) else [value])
    return types - {"null"} == {"string", "integer"}


# ----------------------------------------------------------------------------------------------------- paths

def _param(name: str, location: str, description: str, *, required: bool = False,
           type_: str = "string") -> dict[str, Any]:
    return {"name": name, "in": location, "description": description, "required": required,
            "schema": {"type": type_}}


_WRITE_PARAMS = [
    _param("dryRun", "query", "When present, indicates that modifications should not be persisted."),
    _param("fieldManager", "query", "fieldManager is a name associated with the actor or entity that is making "
                                    "these changes."),
    _param("fieldValidation", "query", "fieldValidation instructs the server on how to handle objects in the "
                                       "request containing unknown or duplicate fields: Ignore, Warn or Strict."),
]
_LIST_PARAMS = [
    _param(name, "query", desc, type_=kind) for name, desc, kind in (
        ("labelSelector", "A selector to restrict the list of returned objects by their labels.", "string"),
        ("fieldSelector", "A selector to restrict the list of returned objects by their fields.", "string"),
        ("limit", "limit is a maximum number of responses to return for a list call.", "integer"),
        ("continue", "The continue option should be set when retrieving more results from the server.",
         "string"),
        ("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be "
                            "served from.", "string"),
        ("watch", "Watch for changes to the described resources.", "boolean"),
        ("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type BOOKMARK.", "boolean"),
        ("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    )
]
_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json")


def _ref(name: str | None) -> dict[str, Any]:
    return {"$ref": _COMPONENTS + name} if name else {"type": "object"}


def _json_response(name: str | None, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _operation(action: str, operation_id: str, gvk: dict[str, str], responses: dict[str, Any], *,
               parameters: list[dict[str, Any]] | None = None,
               request: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": operation_id, "responses": responses,
                          "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk}
    if parameters:
        op["parameters"] = parameters
    if request:
        op["requestBody"] = request
    return op


def _resource_paths(schemas: SchemaRegistry, info: ResourceInfo) -> dict[str, Any]:
    prefix = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
    scope = "/namespaces/{namespace}" if info.namespaced else ""
    gvk = {"group": info.group, "version": info.version, "kind": info.kind}
    obj = _definition(schemas, info.group, info.version, info.kind)
    lst = _definition(schemas, info.group, info.version, info.kind + "List")
    status = _META + "Status"
    op_name = info.kind + ("Namespaced" if info.namespaced else "")
    scope_params = [_param("namespace", "path", "object name and auth scope", required=True)] if scope else []
    name_param = [_param("name", "path", f"name of the {info.kind}", required=True)]
    body = {"required": True, "content": {"application/json": {"schema": _ref(obj)}}}
    patch_body = {"required": True, "content": {t: {"schema": _ref(_META + "Patch")} for t in _PATCH_TYPES}}
    patch_params = [*_WRITE_PARAMS, _param("force", "query", "Force is going to force Apply requests.",
                                           type_="boolean")]
    verbs = set(info.verbs)
    paths: dict[str, Any] = {}

    collection: dict[str, Any] = {"parameters": scope_params}
    if "list" in verbs:
        collection["get"] = _operation("list", f"list{op_name}", gvk, {"200": _json_response(lst)},
                                       parameters=_LIST_PARAMS)
    if "create" in verbs:
        collection["post"] = _operation("post", f"create{op_name}", gvk,
                                        {"200": _json_response(obj), "201": _json_response(obj, "Created"),
                                         "202": _json_response(obj, "Accepted")},
                                        parameters=_WRITE_PARAMS, request=body)
    if "deletecollection" in verbs:
        collection["delete"] = _operation("deletecollection", f"deleteCollection{op_name}", gvk,
                                          {"200": _json_response(status)}, parameters=_LIST_PARAMS)
    if len(collection) > 1:
        paths[f"{prefix}{scope}/{info.plural}"] = collection
    if info.namespaced and "list" in verbs:
        paths[f"{prefix}/{info.plural}"] = {"get": _operation(
            "list", f"list{info.kind}ForAllNamespaces", gvk, {"200": _json_response(lst)},
            parameters=_LIST_PARAMS)}

    item: dict[str, Any] = {"parameters": [*name_param, *scope_params]}
    if "get" in verbs:
        item["get"] = _operation("get", f"read{op_name}", gvk, {"200": _json_response(obj)})
    if "update" in verbs:
        item["put"] = _operation("put", f"replace{op_name}", gvk, {"200": _json_response(obj),
                                                                   "201": _json_response(obj, "Created")},
                                 parameters=_WRITE_PARAMS, request=body)
    if "patch" in verbs:
        item["patch"] = _operation("patch", f"patch{op_name}", gvk, {"200": _json_response(obj),
                                                                     "201": _json_response(obj, "Created")},
                                   parameters=patch_params, request=patch_body)
    if "delete" in verbs:
        item["delete"] = _operation("delete", f"delete{op_name}", gvk,
                                    {"200": _json_response(obj), "202": _json_response(obj, "Accepted")},
                                    request={"content": {"application/json": {"schema": _ref(
                                        _META + "DeleteOptions")}}})
    if len(item) > 1:
        paths[f"{prefix}{scope}/{info.plural}/{{name}}"] = item

    for sub, (sub_kind, sub_group, sub_version, sub_verbs) in info.subresources.items():
        sub_gvk = {"group": sub_group or info.group, "version": sub_version or info.version, "kind": sub_kind}
        sub_obj = _definition(schemas, sub_gvk["group"], sub_gvk["version"], sub_kind)
        sub_body = {"required": True, "content": {"application/json": {"schema": _ref(sub_obj)}}}
        title = sub[:1].upper() + sub[1:]
        entry: dict[str, Any] = {"parameters": [*name_param, *scope_params]}
        if "get" in sub_verbs:
            entry["get"] = _operation("get", f"read{op_name}{title}", sub_gvk, {"200": _json_response(sub_obj)})
        if "update" in sub_verbs:
            entry["put"] = _operation("put", f"replace{op_name}{title}", sub_gvk,
                                      {"200": _json_response(sub_obj)}, parameters=_WRITE_PARAMS,
                                      request=sub_body)
        if "patch" in sub_verbs:
            entry["patch"] = _operation("patch", f"patch{op_name}{title}", sub_gvk,
                                        {"200": _json_response(sub_obj)}, parameters=patch_params,
                                        request=patch_body)
        if "create" in sub_verbs:
            entry["post"] = _operation("post", f"create{op_name}{title}", sub_gvk,
                                       {"200": _json_response(sub_obj), "201": _json_response(sub_obj, "Created")},
                                       parameters=_WRITE_PARAMS, request=sub_body)
        if len(entry) > 1:
            paths[f"{prefix}{scope}/{info.plural}/{{name}}/{sub}"] = entry
    return paths
