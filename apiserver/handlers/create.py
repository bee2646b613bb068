"""POST on a collection: metadata, defaults, validation, then a create-if-absent in storage."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiokube.api.errors import ApiError, already_exists
from aiokube.api.types import Obj
from apiserver.handlers import service_allocation
from apiserver.handlers.common import random_suffix, to_stored
from apiserver.handlers.objectmeta import check_identity, check_type, prepare_create_meta, track_managed_fields
from apiserver.handlers.state import ServerState
from apiserver.handlers.validation import check_schema, check_strategy
from apiserver.registry import ResourceHandle
from apiserver.storage.interface import KeyExistsError

# generateName collisions are retried with a new suffix, as apiserver's create does a few times.
_GENERATE_NAME_ATTEMPTS = 8


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_validation: str = "Warn"
    manager: str = "unknown"
    force: bool = False
    manager_explicit: bool = False  # fieldManager was given (server-side apply requires it)
    user: Any = None  # the authenticated requester (apiserver.auth.user.UserInfo), None without authentication


async def create_object(state: ServerState, handle: ResourceHandle, namespace: str | None, body: object,
                        opts: WriteOptions, *, track_fields: bool = True) -> tuple[Obj, list[str]]:
    """Returns the stored object and the warnings for the response; `track_fields` False when server-side
    apply has already recorded the managers."""
    obj = check_type(body, handle)
    check_identity(obj, handle, namespace, None)
    meta = obj["metadata"]
    info = handle.info
    warnings = check_schema(state, obj, group=info.group, version=info.version, kind=info.kind,
                            name=meta.get("name") or meta.get("generateName", ""), mode=opts.field_validation)
    now = time.time()
    prepare_create_meta(obj, handle, now)
    strategy = handle.strategy
    strategy.default(obj)
    strategy.prepare_for_create(obj)
    strategy.stamp_requester(obj, opts.user)
    generated = not meta.get("name")
    if generated:
        meta["name"] = meta["generateName"] + random_suffix()
    check_strategy(handle, obj, None)
    ns = meta.get("namespace") if info.namespaced else None
    if ns:
        await state.namespaces.check_writable(ns)
    if track_fields:
        obj = track_managed_fields(None, obj, manager=opts.manager, operation="Update", subresource="",
                                   api_version=info.api_version, now=now, schemas=state.schemas)
    if opts.dry_run:
        return obj, warnings
    for _attempt in range(_GENERATE_NAME_ATTEMPTS):
        # Allocated values are owned by the Service's name, so a regenerated name allocates again.
        allocation = await service_allocation.allocate(state, handle, obj)
        try:
            revision = await handle.storage.create(handle.key(ns, meta["name"]), to_stored(obj))
        except BaseException as error:
            await service_allocation.rollback(allocation)
            if not isinstance(error, KeyExistsError):
                raise
            if not generated:
                raise already_exists(info.plural, info.group, meta["name"]) from None
            meta["name"] = meta["generateName"] + random_suffix()
            continue
        meta["resourceVersion"] = str(revision)
        await service_allocation.commit(allocation)
        return obj, warnings
    raise ApiError(409, f'{info.plural} "{meta["name"]}" already exists, the server was not able to generate a '
                        f'unique name for the object', "AlreadyExists",
                   {"name": meta["name"], "group": info.group, "kind": info.plural})
