"""PUT of an object (and of its status), plus `commit_update`, the read-modify-write step every modifying verb
(update, patch, status, scale, binding, graceful delete, finalize) ends with."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

from aiokube.api.errors import ApiError, conflict, not_found
from aiokube.api.types import Obj
from apiserver.handlers import service_allocation
from apiserver.handlers.common import MODIFIED_MESSAGE, from_kv, to_stored
from apiserver.handlers.create import WriteOptions, create_object
from apiserver.handlers.objectmeta import (
    bump_generation,
    carry_system_fields,
    check_identity,
    check_type,
    track_managed_fields,
)
from apiserver.handlers.state import ServerState
from apiserver.handlers.validation import check_schema, check_strategy
from apiserver.registry import ResourceHandle
from apiserver.storage.interface import ConflictError, KeyValue

# A PATCH (or an update without resourceVersion) re-reads and re-applies on a storage conflict, as Kubernetes'
# GuaranteedUpdate does; a bounded number of attempts keeps a hot object from looping forever.
MAX_CONFLICT_RETRIES = 16


# Kinds whose PUT creates a missing object, as in Kubernetes (their strategies' AllowCreateOnUpdate).
_CREATE_ON_UPDATE = frozenset({"leases", "endpoints", "events"})


def _allows_create_on_update(handle: ResourceHandle) -> bool:
    return bool(getattr(handle.strategy, "allow_create_on_update", handle.info.plural in _CREATE_ON_UPDATE))


def ready_to_go(obj: Obj) -> bool:
    """An object being deleted is removed from storage by the update that lets go of it: no finalizers left and
    no grace period running (as Kubernetes' ShouldDeleteDuringUpdate). A pod in graceful deletion keeps
    taking status updates until its node agent finishes it with a grace-0 DELETE."""
    meta = obj.get("metadata", {})
    if not meta.get("deletionTimestamp") or meta.get("finalizers"):
        return False
    if int(meta.get("deletionGracePeriodSeconds") or 0) != 0:
        return False
    return not (obj.get("kind") == "Namespace" and obj.get("spec", {}).get("finalizers"))


async def commit_update(state: ServerState, handle: ResourceHandle, current: KeyValue, new: Obj,
                        opts: WriteOptions, *, subresource: str = "", operation: str = "Update",
                        check_schema_of_new: bool = True) -> tuple[Obj, list[str]]:
    """Validate `new` against the stored `current` and compare-and-swap it in. Raises ConflictError (storage)
    when `current` is stale, so callers decide between retrying and answering 409."""
    info, strategy = handle.info, handle.strategy
    old = from_kv(current)
    name = old["metadata"]["name"]
    warnings: list[str] = []
    if check_schema_of_new:
        warnings = check_schema(state, new, group=info.group, version=info.version, kind=info.kind, name=name,
                                mode=opts.field_validation)
    new_uid, old_uid = (new.get("metadata") or {}).get("uid"), old["metadata"].get("uid")
    if new_uid and new_uid != old_uid:  # a uid in the body is a precondition, as in Kubernetes' Store.Update
        raise conflict(info.plural, info.group, name,
                       f"Precondition failed: UID in precondition: {new_uid}, UID in object meta: {old_uid}")
    carry_system_fields(new, old)
    if subresource == "status":
        strategy.prepare_for_status_update(new, old)
    elif subresource:
        strategy.prepare_for_subresource_update(subresource, new, old)
    else:
        strategy.prepare_for_update(new, old)
    strategy.default(new)
    bump_generation(new, old, handle)
    check_strategy(handle, new, old)
    now = time.time()
    if operation != "Apply":  # server-side apply already recorded its manager's fields
        new = track_managed_fields(old, new, manager=opts.manager, operation=operation, subresource=subresource,
                                   api_version=info.api_version, now=now, schemas=state.schemas)
    new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
    if ready_to_go(new):
        if not opts.dry_run:
            await handle.storage.delete(current.key, expected_revision=current.mod_revision)
            await service_allocation.release(state, handle, old)  # the last finalizer is gone: so is the object
        return new, warnings
    if new == old or opts.dry_run:
        return new, warnings  # nothing changed: Kubernetes skips the write and keeps the resourceVersion
    # Status and other subresource writes keep the spec, hence its allocated values.
    allocation = None if subresource else await service_allocation.allocate(state, handle, new, old)
    try:
        revision = await handle.storage.update(current.key, to_stored(new), expected_revision=current.mod_revision)
    except BaseException:
        await service_allocation.rollback(allocation)
        raise
    await service_allocation.commit(allocation)
    new["metadata"]["resourceVersion"] = str(revision)
    return new, warnings


async def create_or_update(state: ServerState, handle: ResourceHandle, namespace: str | None, name: str, *,
                           create: Callable[[], Obj], update: Callable[[Obj], Obj | None], opts: WriteOptions,
                           attempts: int) -> bool:
    """The server's own read-modify-write of one object: create `create()` when the object is absent, else
    compare-and-swap in `update(stored)` (None: nothing to change). A race lost to another writer (the create
    finding the object, the swap a newer revision) starts over, at most `attempts` times; returns False when
    every attempt lost one."""
    key = handle.key(namespace, name)
    for _attempt in range(attempts):
        current = await handle.storage.get(key)
        if current is None:
            try:
                await create_object(state, handle, namespace, create(), opts)
                return True
            except ApiError as error:
                if error.reason != "AlreadyExists":
                    raise
                continue
        wanted = update(from_kv(current))
        if wanted is None:
            return True
        try:
            await commit_update(state, handle, current, wanted, opts)
            return True
        except ConflictError:
            continue
    return False


async def read_current(handle: ResourceHandle, namespace: str | None, name: str) -> KeyValue:
    kv = await handle.storage.get(handle.key(namespace, name))
    if kv is None:
        raise not_found(handle.info.plural, handle.info.group, name)
    return kv


async def update_object(state: ServerState, handle: ResourceHandle, namespace: str | None, name: str,
                        body: object, opts: WriteOptions, *, subresource: str = "") -> tuple[int, Obj, list[str]]:
    """PUT: returns (HTTP status, object, warnings); 201 when a kind that allows it was created."""
    info = handle.info
    new = check_type(body, handle)
    check_identity(new, handle, namespace, name)
    if (not subresource and _allows_create_on_update(handle)
            and await handle.storage.get(handle.key(namespace, name)) is None):
        new["metadata"].pop("resourceVersion", None)
        return (201, *await create_object(state, handle, namespace, new, opts))
    wanted_rv = new["metadata"].get("resourceVersion") or ""
    if wanted_rv:  # optimistic concurrency: a stale resourceVersion is the client's conflict, never retried
        current = await read_current(handle, namespace, name)
        if wanted_rv != str(current.mod_revision):
            raise conflict(info.plural, info.group, name, MODIFIED_MESSAGE)
        try:
            return (200, *await commit_update(state, handle, current, new, opts, subresource=subresource))
        except ConflictError:
            raise conflict(info.plural, info.group, name, MODIFIED_MESSAGE) from None
    for _attempt in range(MAX_CONFLICT_RETRIES):  # unconditional update: last writer wins
        current = await read_current(handle, namespace, name)
        try:
            return (200, *await commit_update(state, handle, current, copy.deepcopy(new), opts,
                                              subresource=subresource))
        except ConflictError:
            continue
    raise conflict(info.plural, info.group, name, MODIFIED_MESSAGE)
