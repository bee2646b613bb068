"""The generic metadata rules of writes: identity checks against the URL, system fields on create, what an
update may not change, generation bumps and managedFields."""

from __future__ import annotations

import copy
import logging
from typing import Any

from aiokube.api.errors import bad_request, invalid
from aiokube.api.types import Obj
from apiserver.handlers.common import now_rfc3339
from apiserver.patch import update_managed_fields
from apiserver.registry import ResourceHandle
from apiserver.uids import new_uid

log = logging.getLogger(__name__)

# Fields only the server sets; an update keeps the stored values.
_SYSTEM_FIELDS = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                  "selfLink")


def check_type(obj: Any, handle: ResourceHandle, *, kind: str | None = None, api_version: str | None = None) -> Obj:
    """The body must be an object of this resource's kind (apiVersion/kind may be omitted)."""
    if not isinstance(obj, dict):
        raise bad_request("the body of the request must be a JSON object")
    want_kind, want_version = kind or handle.info.kind, api_version or handle.info.api_version
    got_kind, got_version = obj.get("kind"), obj.get("apiVersion")
    if got_kind and got_kind != want_kind:
        raise bad_request(f"the kind of the object ({got_kind}) does not match the kind on the URL ({want_kind})")
    if got_version and got_version != want_version:
        raise bad_request(f"the API version in the data ({got_version}) does not match the expected API version "
                          f"({want_version})")
    # apiVersion and kind first, as Kubernetes serialises them (the dict is rebuilt in place).
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    obj.clear()
    obj.update(apiVersion=want_version, kind=want_kind, **rest)
    meta = obj.get("metadata")
    if meta is None:
        obj["metadata"] = {}
    elif not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    return obj


def check_identity(obj: Obj, handle: ResourceHandle, namespace: str | None, name: str | None) -> None:
    """Name and namespace in the body must match the URL; missing ones are filled from it."""
    meta = obj["metadata"]
    if handle.info.namespaced:
        body_ns = meta.get("namespace")
        if body_ns and namespace and body_ns != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                              "request")
        if namespace:
            meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    if name is not None:
        body_name = meta.get("name")
        if body_name and body_name != name:
            raise bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        meta["name"] = name


def prepare_create_meta(obj: Obj, handle: ResourceHandle, now: float) -> None:
    meta = obj["metadata"]
    if meta.get("resourceVersion"):
        raise bad_request("resourceVersion should not be set on objects to be created")
    for field in _SYSTEM_FIELDS:
        meta.pop(field, None)
    if not meta.get("name") and not meta.get("generateName"):
        raise invalid(handle.info.kind, handle.info.group, "", [
            {"field": "metadata.name", "reason": "FieldValueRequired",
             "message": "Required value: name or generateName is required"}])
    meta["uid"] = new_uid()
    meta["creationTimestamp"] = now_rfc3339(now)
    if handle.strategy.tracks_generation:
        meta["generation"] = 1


def carry_system_fields(new: Obj, old: Obj) -> None:
    """What clients may not change on update: identity, timestamps, generation (recomputed afterwards)."""
    new_meta, old_meta = new["metadata"], old.get("metadata", {})
    for field in _SYSTEM_FIELDS:
        if field in old_meta:
            new_meta[field] = old_meta[field]
        else:
            new_meta.pop(field, None)


def spec_changed(new: Obj, old: Obj) -> bool:
    """Kubernetes bumps generation when anything but metadata and status changes."""
    ignored = ("metadata", "status", "apiVersion", "kind")
    keys = (set(new) | set(old)) - set(ignored)
    return any(new.get(k) != old.get(k) for k in keys)


def bump_generation(new: Obj, old: Obj, handle: ResourceHandle) -> None:
    if not handle.strategy.tracks_generation:
        return
    generation = int(old.get("metadata", {}).get("generation") or 1)
    if spec_changed(new, old):
        generation += 1
    new["metadata"]["generation"] = generation


def manager_from(user_agent: str | None, field_manager: str | None) -> str:
    """apiserver's default manager: the User-Agent's product token (e.g. `kubectl-client-side-apply`)."""
    if field_manager:
        return field_manager
    agent = (user_agent or "unknown").split(" ", 1)[0]
    return agent.split("/", 1)[0][:128] or "unknown"


def track_managed_fields(old: Obj | None, new: Obj, *, manager: str, operation: str, subresource: str,
                         api_version: str, now: float, schemas: Any = None) -> Obj:
    """Record this write's manager in new's managedFields (apiserver.patch.update_managed_fields)."""
    update_managed_fields(old, new, manager=manager, operation=operation, subresource=subresource,
                          api_version=api_version, now=now, schemas=schemas)
    return new


def deep_copy(obj: Obj) -> Obj:
    return copy.deepcopy(obj)
