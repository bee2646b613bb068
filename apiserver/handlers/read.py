"""GET of one object and of a collection: selectors, limit/continue paging at one consistent revision."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import orjson

from aiokube.api.errors import ApiError, bad_request, expired, not_found
from aiokube.api.types import Obj
from apiserver.handlers.common import from_kv, query_int, resource_version_param, with_type
from apiserver.handlers.selection import Selection
from apiserver.registry import ResourceHandle
from apiserver.storage.interface import CompactedError

CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list "
    "without the continue parameter, or use the continue token in this response to retrieve the remainder of "
    "the results. Continuing with the provided token results in an inconsistent list - objects that were "
    "created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
)


def encode_continue(revision: int, start_after: str) -> str:
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start_after})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    """(revision, key relative to the collection prefix after which to resume)."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        revision, start = int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise bad_request("continue key is not valid: incorrect encoded start resourceVersion (version "
                          "meta.k8s.io/v1)") from None
    if revision <= 0 or ".." in start or start.startswith("/"):
        raise bad_request("continue key is not valid: invalid start key")
    return revision, start


async def get_object(handle: ResourceHandle, namespace: str | None, name: str) -> Obj:
    kv = await handle.storage.get(handle.key(namespace, name))
    if kv is None:
        raise not_found(handle.info.plural, handle.info.group, name)
    return with_type(from_kv(kv), handle)


_LIMIT_CAP = 2**40


def too_large_resource_version(requested: int, current: int) -> ApiError:
    """Kubernetes' 504 for a resourceVersion the store has not reached (client-go retries after a second)."""
    return ApiError(504, f"Too large resource version: {requested}, current: {current}", "Timeout",
                    {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                     "retryAfterSeconds": 1})


async def check_not_future(handle: ResourceHandle, rv: str) -> None:
    """A read at a resourceVersion newer than the store's is a 504, not a hang or a storage error."""
    wanted = resource_version_param(rv)
    if wanted:
        current = await handle.storage.current_revision()
        if wanted > current:
            raise too_large_resource_version(wanted, current)


def _list_revision(query: Mapping[str, str]) -> int | None:
    rv = query.get("resourceVersion") or ""
    match = query.get("resourceVersionMatch") or ""
    if rv and query.get("continue"):
        raise bad_request("specifying resource version is not allowed when using continue")
    if match not in ("", "Exact", "NotOlderThan"):
        raise bad_request(f'resourceVersionMatch: Unsupported value: "{match}": supported values: "Exact", '
                          f'"NotOlderThan"')
    if match and not rv:
        raise bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")
    wanted = resource_version_param(rv)
    if match == "Exact":
        if not wanted:
            raise bad_request('resourceVersionMatch "exact" is forbidden for resourceVersion "0"')
        return wanted
    return None  # unset, "0" and NotOlderThan are all served at the latest revision


async def list_objects(handle: ResourceHandle, namespace: str | None, query: Mapping[str, str]) -> Obj:
    selection = Selection.from_query(handle, query)
    # A limit beyond any collection's size means "no paging cut"; capped so storage's own arithmetic on it
    # (limit + 1 to see whether more follow) stays inside etcd's int64.
    limit = min(max(query_int(query, "limit") or 0, 0), _LIMIT_CAP)
    prefix = handle.prefix(namespace)
    revision = _list_revision(query)
    await check_not_future(handle, query.get("resourceVersion") or "")
    start_after: str | None = None
    token = query.get("continue")
    if token:
        revision, relative = decode_continue(token)
        start_after = prefix + relative
    items: list[Obj] = []
    next_token: str | None = None
    remaining: int | None = None
    while True:
        try:
            page = await handle.storage.list(prefix, limit=(limit - len(items)) if limit else 0,
                                             start_after=start_after, revision=revision)
        except CompactedError:
            if token:
                raise expired(CONTINUE_EXPIRED) from None
            raise expired(f"too old resource version: {revision}") from None
        revision = page.revision
        for index, kv in enumerate(page.items):
            obj = from_kv(kv)
            if selection.everything or selection.matches(obj):
                items.append(obj)
                if limit and len(items) >= limit:
                    if index < len(page.items) - 1 or page.more:
                        next_token = encode_continue(revision, kv.key[len(prefix):])
                        if selection.everything:
                            remaining = page.remaining + (len(page.items) - 1 - index)
                    break
        else:
            if page.more and page.items:
                start_after = page.items[-1].key
                continue
        break
    metadata: Obj = {"resourceVersion": str(revision)}
    if next_token:
        metadata["continue"] = next_token
        if remaining:
            metadata["remainingItemCount"] = remaining
    for obj in items:
        with_type(obj, handle)
    return {"kind": f"{handle.info.kind}List", "apiVersion": handle.info.api_version, "metadata": metadata,
            "items": items}
