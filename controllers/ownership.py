"""Adoption and release of dependents by a selector-based controller (k8s ControllerRefManager).

A controller claims the objects it owns (controller ownerReference with its uid) that still match its
selector, adopts matching orphans (adds its controller reference) and releases owned objects whose labels no
longer match (removes its reference). Adoption is refused once the owner is being deleted, checked against a
fresh read so a stale cache cannot adopt into an owner that is going away.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from controllers.labels import selector_matches
from controllers.ownerrefs import controller_of, controller_ref_for, is_deleting, owner_refs, uid_of

log = logging.getLogger(__name__)

FreshOwner = Callable[[], Awaitable[Obj | None]]


async def _patch_owner_refs(client: Any, resource: str, obj: Obj, refs: list[dict[str, Any]]) -> bool:
    """Replace ownerReferences, guarded by resourceVersion (a concurrent change means 409 and a retry)."""
    meta = obj["metadata"]
    body = {"metadata": {"ownerReferences": refs, "resourceVersion": meta.get("resourceVersion")}}
    try:
        await client.patch(resource, meta["name"], body, namespace=meta.get("namespace"), patch_type="merge")
    except ApiError as err:
        if err.code == 404:
            return False  # gone already: nothing to adopt or release
        raise
    return True


async def claim(client: Any, resource: str, owner: Obj, selector: dict[str, Any] | None,
                candidates: list[Obj], fresh_owner: FreshOwner) -> list[Obj]:
    """The candidates `owner` controls after adopting orphans and releasing non-matching dependents."""
    owner_uid = uid_of(owner)
    owner_deleting = is_deleting(owner)
    can_adopt: bool | None = None  # decided lazily, once per claim, by a live GET of the owner
    claimed: list[Obj] = []
    for obj in candidates:
        labels = obj.get("metadata", {}).get("labels") or {}
        matches = selector_matches(selector, labels)
        ref = controller_of(obj)
        if ref is not None:
            if ref.get("uid") != owner_uid:
                continue  # another controller's
            if matches or owner_deleting:
                claimed.append(obj)  # an owner being deleted keeps what it has rather than release
                continue
            remaining = [r for r in owner_refs(obj) if r.get("uid") != owner_uid]
            log.info("releasing %s %s from %s", resource, obj["metadata"]["name"], owner["metadata"]["name"])
            await _patch_owner_refs(client, resource, obj, remaining)
            continue
        if not matches or owner_deleting or is_deleting(obj):
            continue
        if can_adopt is None:
            fresh = await fresh_owner()
            can_adopt = fresh is not None and uid_of(fresh) == owner_uid and not is_deleting(fresh)
        if not can_adopt:
            continue
        log.info("adopting %s %s into %s", resource, obj["metadata"]["name"], owner["metadata"]["name"])
        if await _patch_owner_refs(client, resource, obj, [*owner_refs(obj), controller_ref_for(owner)]):
            adopted = {**obj, "metadata": {**obj["metadata"],
                                           "ownerReferences": [*owner_refs(obj), controller_ref_for(owner)]}}
            claimed.append(adopted)
    return claimed
