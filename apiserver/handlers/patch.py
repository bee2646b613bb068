"""PATCH in its four content types (JSON patch, merge patch, strategic merge patch, server-side apply).

The patch arithmetic lives in apiserver.patch; this module reads, patches, validates and commits, retrying the
whole read-modify-write when another writer got in between (Kubernetes' GuaranteedUpdate)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from aiokube.api.errors import ApiError, bad_request, conflict, not_found
from aiokube.api.types import Obj
from apiserver.codec import decode_body, media_type
from apiserver.handlers.common import MODIFIED_MESSAGE, from_kv
from apiserver.handlers.create import WriteOptions, create_object
from apiserver.handlers.state import ServerState
from apiserver.handlers.update import MAX_CONFLICT_RETRIES, commit_update
from apiserver.handlers.validation import check_applied_config
from apiserver.registry import ResourceHandle
from apiserver.storage.interface import ConflictError, KeyValue

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_PATCH)


def patch_type(content_type: str | None) -> str:
    kind = media_type(content_type)
    if kind not in PATCH_TYPES:
        raise ApiError(415, f'the body of the request was in an unknown format - accepted media types include: '
                            f'{", ".join(PATCH_TYPES)}', "UnsupportedMediaType")
    return kind


def decode_patch(body: bytes, kind: str) -> Any:
    patch = decode_body(body, "application/yaml" if kind == APPLY_PATCH else "application/json")
    if kind == JSON_PATCH and not isinstance(patch, list):
        raise bad_request("json patch must be a list of operations")
    if kind != JSON_PATCH and not isinstance(patch, dict):
        raise bad_request("the patch body must be a JSON object")
    return patch


def apply_to(state: ServerState, handle: ResourceHandle, original: Obj | None, patch: Any, kind: str,
             opts: WriteOptions) -> Obj:
    """The patched object; `original` None means an apply that creates the object."""
    from apiserver import patch as patching

    info = handle.info
    try:
        if kind == APPLY_PATCH:
            # Kubernetes defaults the applied configuration before merging (it is decoded into the typed
            # object), so defaulted list-map keys such as a port's protocol match the live object's.
            applied = copy.deepcopy(patch)
            for required in ("apiVersion", "kind"):  # an applied configuration names its type, always
                if not applied.get(required):
                    raise bad_request(f"{required} must not be empty")
            handle.strategy.default(applied)
            result = patching.server_side_apply(original, applied, manager=opts.manager, force=opts.force,
                                                group=info.group, version=info.version, kind=info.kind,
                                                schemas=state.schemas)
        else:
            assert original is not None
            result = patching.apply_patch(original, patch, kind, group=info.group, version=info.version,
                                          kind=info.kind, schemas=state.schemas)
    except ApiError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # malformed patches are the client's fault
        raise ApiError(422 if kind == JSON_PATCH else 400, f"the patch could not be applied: {exc}") from None
    if not isinstance(result, dict):
        raise bad_request("the patch did not produce an object")
    return result


async def patch_object(state: ServerState, handle: ResourceHandle, namespace: str | None, name: str,
                       body: bytes, content_type: str | None, opts: WriteOptions, *, subresource: str = "",
                       transform: Callable[[Obj, Obj], Obj] | None = None) -> tuple[int, Obj, list[str]]:
    """Returns (HTTP status, object, warnings); 201 when an apply created the object."""
    info = handle.info
    kind = patch_type(content_type)
    if kind == APPLY_PATCH and not opts.manager_explicit:
        raise bad_request("PATCH, application/apply-patch+yaml: fieldManager is required for apply requests")
    patch = decode_patch(body, kind)
    if kind == APPLY_PATCH:
        check_applied_config(state, patch, group=info.group, version=info.version, kind=info.kind,
                             namespace=namespace, name=name)
    key = handle.key(namespace, name)
    for _attempt in range(MAX_CONFLICT_RETRIES):
        current = await handle.storage.get(key)
        if current is None:
            if kind != APPLY_PATCH or subresource:
                raise not_found(info.plural, info.group, name)
            created = await _create_by_apply(state, handle, namespace, name, patch, opts)
            if created is not None:
                return 201, created[0], created[1]
            continue  # someone created it meanwhile: patch theirs
        try:
            obj, warnings = await _patch_current(state, handle, current, patch, kind, opts, subresource)
        except ConflictError:
            continue
        return 200, obj, warnings
    raise conflict(info.plural, info.group, name, MODIFIED_MESSAGE)


async def _patch_current(state: ServerState, handle: ResourceHandle, current: KeyValue, patch: Any, kind: str,
                         opts: WriteOptions, subresource: str) -> tuple[Obj, list[str]]:
    info = handle.info
    original = from_kv(current)
    new = apply_to(state, handle, copy.deepcopy(original), patch, kind, opts)
    meta = new.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    rv = meta.get("resourceVersion")
    if rv and rv != original["metadata"]["resourceVersion"]:
        # the patch carried a resourceVersion precondition: a stale one is the client's conflict
        raise conflict(info.plural, info.group, original["metadata"]["name"], MODIFIED_MESSAGE)
    for field in ("name", "namespace", "uid"):
        if meta.get(field) != original["metadata"].get(field) and field in original["metadata"]:
            if meta.get(field):
                raise bad_request(f"metadata.{field} cannot be changed by a patch")
            meta[field] = original["metadata"][field]
    new["apiVersion"], new["kind"] = info.api_version, info.kind
    return await commit_update(state, handle, current, new, opts, subresource=subresource,
                               operation="Apply" if kind == APPLY_PATCH else "Update")


async def _create_by_apply(state: ServerState, handle: ResourceHandle, namespace: str | None, name: str,
                           patch: Obj, opts: WriteOptions) -> tuple[Obj, list[str]] | None:
    """Server-side apply of a missing object creates it; None when another writer created it first."""
    meta = patch.get("metadata") or {}
    if meta.get("name") and meta["name"] != name:
        raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
    applied = apply_to(state, handle, None, patch, APPLY_PATCH, opts)
    applied.setdefault("metadata", {})["name"] = name
    try:
        return await create_object(state, handle, namespace, applied, opts, track_fields=False)
    except ApiError as exc:
        if exc.reason == "AlreadyExists":
            return None
        raise
