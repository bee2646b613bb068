"""DELETE of one object and of a collection, with DeleteOptions: preconditions, grace periods, propagation
policy finalizers, dryRun. Objects held by finalizers (or pods still running on a node) only get a
deletionTimestamp; whoever removes the last finalizer makes the update that deletes them (update.ready_to_go).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokube.api.errors import ApiError, bad_request, conflict
from aiokube.api.types import Obj
from apiserver.handlers import service_allocation
from apiserver.handlers.common import MODIFIED_MESSAGE, from_kv, now_rfc3339, query_int, status_success, to_stored
from apiserver.handlers.state import ServerState
from apiserver.handlers.update import MAX_CONFLICT_RETRIES, read_current
from apiserver.registry import ResourceHandle
from apiserver.storage.interface import ConflictError, KeyNotFoundError, KeyValue

POLICIES = ("Orphan", "Background", "Foreground")
POLICY_FINALIZERS = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}
# Kinds whose DELETE answers with the object itself rather than a Status (ReturnDeletedObject in Kubernetes).
RETURNS_DELETED_OBJECT = {"pods", "services", "namespaces"}
DEFAULT_POD_GRACE = 30


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    preconditions: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False


def parse_delete_options(body: Any, query: Mapping[str, str], dry_run: bool) -> DeleteOptions:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise bad_request("DeleteOptions must be a JSON object")
    opts = DeleteOptions(dry_run=dry_run or bool(body.get("dryRun")))
    grace = body.get("gracePeriodSeconds")
    if grace is None:
        grace = query_int(query, "gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)
                              or not -(2**63) <= grace < 2**63):
        raise bad_request("gracePeriodSeconds must be an integer")
    opts.grace_period_seconds = grace
    policy = body.get("propagationPolicy") or query.get("propagationPolicy") or None
    orphan = body.get("orphanDependents")
    if orphan is None and query.get("orphanDependents") is not None:
        orphan = query.get("orphanDependents", "").lower() in ("1", "t", "true")
    if policy and orphan is not None:
        raise ApiError(422, "DeleteOptions.meta.k8s.io is invalid: propagationPolicy: Invalid value: "
                            '"orphanDependents": orphanDependents and deletionPropagation cannot be both set',
                       "Invalid")
    if orphan is not None:
        policy = "Orphan" if orphan else "Background"
    if policy is not None and policy not in POLICIES:
        raise ApiError(422, f'DeleteOptions.meta.k8s.io is invalid: propagationPolicy: Unsupported value: '
                            f'"{policy}": supported values: "Foreground", "Background", "Orphan", "nil"', "Invalid")
    opts.propagation_policy = policy
    pre = body.get("preconditions") or {}
    if not isinstance(pre, dict):
        raise bad_request("preconditions must be an object")
    opts.preconditions = {k: str(v) for k, v in pre.items() if v}
    return opts


def _check_preconditions(handle: ResourceHandle, obj: Obj, opts: DeleteOptions) -> None:
    meta, info = obj["metadata"], handle.info
    for key, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        wanted = opts.preconditions.get(key)
        if wanted and wanted != meta.get(key):
            raise conflict(info.plural, info.group, meta["name"],
                           f"Precondition failed: {label} in precondition: {wanted}, {label} in object meta: "
                           f"{meta.get(key, '')}")


def _pod_grace(obj: Obj, opts: DeleteOptions) -> int:
    """Only a pod bound to a node is deleted gracefully: its kubelet must stop the containers first."""
    if not obj.get("spec", {}).get("nodeName"):
        return 0
    if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return 0  # its containers have already stopped: nothing to wait for
    if opts.grace_period_seconds is not None:
        return max(0, opts.grace_period_seconds)
    return int(obj.get("spec", {}).get("terminationGracePeriodSeconds", DEFAULT_POD_GRACE) or 0)


IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
"""Namespaces Kubernetes' NamespaceLifecycle admission refuses to delete."""


async def delete_object(state: ServerState, handle: ResourceHandle, namespace: str | None, name: str,
                        opts: DeleteOptions) -> Obj:
    info = handle.info
    if info.plural == "namespaces" and not info.group and name in IMMORTAL_NAMESPACES:
        raise ApiError(403, f'namespaces "{name}" is forbidden: this namespace may not be deleted', "Forbidden",
                       {"name": name, "kind": "namespaces"})
    for _attempt in range(MAX_CONFLICT_RETRIES):
        current = await read_current(handle, namespace, name)
        try:
            result = await _delete_current(state, handle, current, opts)
        except ConflictError:
            continue
        except KeyNotFoundError:
            continue  # gone between our read and our delete: the next read answers 404
        if (info.plural == "namespaces" and not opts.dry_run
                and result.get("metadata", {}).get("deletionTimestamp")):
            state.namespaces.note_terminating(name)
        return result
    raise conflict(info.plural, info.group, name, MODIFIED_MESSAGE)


async def _delete_current(state: ServerState, handle: ResourceHandle, current: KeyValue, opts: DeleteOptions) \
        -> Obj:
    obj = from_kv(current)
    _check_preconditions(handle, obj, opts)
    meta = obj["metadata"]
    plural = handle.info.plural
    if plural == "namespaces":
        return await _delete_namespace(state, handle, current, obj, opts)
    grace = _pod_grace(obj, opts) if plural == "pods" else 0
    finalizers = list(meta.get("finalizers") or [])
    wanted = POLICY_FINALIZERS.get(opts.propagation_policy or "")
    if wanted and wanted not in finalizers and (grace > 0 or finalizers or not meta.get("deletionTimestamp")):
        # The garbage collector acts on these; a Foreground/Orphan delete always waits for it.
        finalizers.append(wanted)
        other = POLICY_FINALIZERS["Orphan" if wanted == "foregroundDeletion" else "Foreground"]
        if other in finalizers:
            finalizers.remove(other)
    if meta.get("deletionTimestamp"):
        return await _delete_again(state, handle, current, obj, finalizers, grace, opts)
    if grace > 0 or finalizers:
        meta["deletionTimestamp"] = now_rfc3339(time.time() + grace)
        meta["deletionGracePeriodSeconds"] = grace
        _bump_generation(meta)
        if finalizers:
            meta["finalizers"] = finalizers
        if not opts.dry_run:
            revision = await handle.storage.update(current.key, to_stored(obj), expected_revision=current.mod_revision)
            meta["resourceVersion"] = str(revision)
        return obj
    return await _remove(state, handle, current, obj, opts)


def _bump_generation(meta: Obj) -> None:
    """Setting deletionTimestamp is a change of the desired state: Kubernetes' BeforeDelete bumps a tracked
    generation so that controllers watching observedGeneration notice it."""
    generation = meta.get("generation")
    if isinstance(generation, int) and generation > 0:
        meta["generation"] = generation + 1


async def _delete_again(state: ServerState, handle: ResourceHandle, current: KeyValue, obj: Obj,
                        finalizers: list[str], grace: int, opts: DeleteOptions) -> Obj:
    """A DELETE of an object already being deleted may shorten a pod's grace period (0 finishes it)."""
    meta = obj["metadata"]
    if handle.info.plural == "pods" and opts.grace_period_seconds is not None:
        if grace == 0 and not finalizers:
            return await _remove(state, handle, current, obj, opts)
        if grace < int(meta.get("deletionGracePeriodSeconds") or 0):
            meta["deletionTimestamp"] = now_rfc3339(time.time() + grace)
            meta["deletionGracePeriodSeconds"] = grace
    changed = finalizers != list(meta.get("finalizers") or []) or obj != from_kv(current)
    if finalizers:
        meta["finalizers"] = finalizers
    if changed and not opts.dry_run:
        revision = await handle.storage.update(current.key, to_stored(obj), expected_revision=current.mod_revision)
        meta["resourceVersion"] = str(revision)
    return obj


async def _remove(state: ServerState, handle: ResourceHandle, current: KeyValue, obj: Obj,
                  opts: DeleteOptions) -> Obj:
    if not opts.dry_run:
        await handle.storage.delete(current.key, expected_revision=current.mod_revision)
        await service_allocation.release(state, handle, obj)
    if handle.info.plural in RETURNS_DELETED_OBJECT:
        return obj
    return status_success(handle, obj)


async def _delete_namespace(state: ServerState, handle: ResourceHandle, current: KeyValue, obj: Obj,
                            opts: DeleteOptions) -> Obj:
    """Namespaces terminate: the namespace controller empties them and then removes spec.finalizers."""
    meta = obj["metadata"]
    if meta.get("deletionTimestamp"):
        raise conflict("namespaces", "", meta["name"],
                       "The system is ensuring all content is removed from this namespace.  Upon completion, "
                       "this namespace will automatically be purged by the system.")
    spec = obj.setdefault("spec", {})
    if "finalizers" not in spec:
        spec["finalizers"] = ["kubernetes"]
    wanted = POLICY_FINALIZERS.get(opts.propagation_policy or "")
    if wanted:
        meta["finalizers"] = [*[f for f in meta.get("finalizers") or [] if f != wanted], wanted]
    if not spec["finalizers"] and not meta.get("finalizers"):
        return await _remove(state, handle, current, obj, opts)
    meta["deletionTimestamp"] = now_rfc3339()
    meta["deletionGracePeriodSeconds"] = 0
    _bump_generation(meta)
    obj.setdefault("status", {})["phase"] = "Terminating"
    if not opts.dry_run:
        revision = await handle.storage.update(current.key, to_stored(obj), expected_revision=current.mod_revision)
        meta["resourceVersion"] = str(revision)
    return obj


async def delete_collection(state: ServerState, handle: ResourceHandle, namespace: str | None,
                            items: list[Obj], opts: DeleteOptions) -> Obj:
    """Delete every listed object (already filtered by the caller's selectors); answer the List of them."""
    deleted: list[Obj] = []
    for item in items:
        meta = item["metadata"]
        try:
            result = await delete_object(state, handle, meta.get("namespace") or namespace, meta["name"], opts)
        except ApiError as exc:
            if exc.code == 404:
                continue
            raise
        deleted.append(result if result.get("kind") != "Status" else item)
    return {"kind": f"{handle.info.kind}List", "apiVersion": handle.info.api_version, "metadata": {},
            "items": deleted}
