"""Subresources beyond status: scale (autoscaling/v1 Scale), binding, eviction, namespace finalize, and the
node-proxied pods/log and pods/exec (not served until the node agent exposes its server)."""

from __future__ import annotations

import copy
from typing import Any

from aiokube.api.errors import ApiError, bad_request, conflict
from aiokube.api.types import Obj
from apiserver.handlers.common import MODIFIED_MESSAGE, from_kv, now_rfc3339, to_stored
from apiserver.handlers.create import WriteOptions
from apiserver.handlers.delete import DeleteOptions, delete_object, parse_delete_options
from apiserver.handlers.objectmeta import check_type
from apiserver.handlers.patch import APPLY_PATCH, decode_patch, patch_type
from apiserver.handlers.state import ServerState
from apiserver.handlers.update import MAX_CONFLICT_RETRIES, commit_update, read_current
from apiserver.handlers.validation import check_schema
from apiserver.registry import ResourceHandle
from apiserver.storage.interface import ConflictError, KeyValue

# --- scale ------------------------------------------------------------------------------------------------


def selector_string(selector: Any) -> str:
    """metav1.LabelSelector as the string form Scale.status.selector carries (`a=b,c in (d,e)`)."""
    if not isinstance(selector, dict):
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), sorted(expr.get("values") or [])
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(sorted(terms))


def to_scale(obj: Obj) -> Obj:
    meta = obj.get("metadata", {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": int(obj.get("spec", {}).get("replicas", 1) or 0)},
        "status": {"replicas": int(obj.get("status", {}).get("replicas", 0) or 0),
                   "selector": selector_string(obj.get("spec", {}).get("selector"))},
    }


def _replicas_of(state: ServerState, scale: Any, name: str) -> int:
    """spec.replicas of a Scale the client sent or patched: typed like Kubernetes' decode (a missing spec or
    replicas is 0), and non-negative."""
    if not isinstance(scale, dict):
        raise bad_request("the body of the request must be a Scale object")
    check_schema(state, scale, group="autoscaling", version="v1", kind="Scale", name=name, mode="Ignore")
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise ApiError(422, f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                            f'must be greater than or equal to 0', "Invalid",
                       {"name": name, "group": "autoscaling", "kind": "Scale", "causes": [
                           {"field": "spec.replicas", "reason": "FieldValueInvalid",
                            "message": "must be greater than or equal to 0"}]})
    return replicas


async def _write_replicas(state: ServerState, handle: ResourceHandle, current: KeyValue, replicas: int,
                          opts: WriteOptions) -> Obj:
    obj = from_kv(current)
    new = copy.deepcopy(obj)
    new.setdefault("spec", {})["replicas"] = replicas
    result, _ = await commit_update(state, handle, current, new, opts, subresource="scale",
                                    check_schema_of_new=False)
    return to_scale(result)


async def update_scale(state: ServerState, handle: ResourceHandle, namespace: str | None, name: str, body: Any,
                       opts: WriteOptions) -> Obj:
    scale = check_type(body, handle, kind="Scale", api_version="autoscaling/v1")
    replicas = _replicas_of(state, scale, name)
    wanted_rv = scale["metadata"].get("resourceVersion")
    for _attempt in range(MAX_CONFLICT_RETRIES):
        current = await read_current(handle, namespace, name)
        if wanted_rv and wanted_rv != str(current.mod_revision):
            raise conflict(handle.info.plural, handle.info.group, name, MODIFIED_MESSAGE)
        try:
            return await _write_replicas(state, handle, current, replicas, opts)
        except ConflictError:
            if wanted_rv:
                raise
    raise conflict(handle.info.plural, handle.info.group, name, MODIFIED_MESSAGE)


async def patch_scale(state: ServerState, handle: ResourceHandle, namespace: str | None, name: str, body: bytes,
                      content_type: str | None, opts: WriteOptions) -> Obj:
    kind = patch_type(content_type)
    patch = decode_patch(body, kind)
    for _attempt in range(MAX_CONFLICT_RETRIES):
        current = await read_current(handle, namespace, name)
        scale = to_scale(from_kv(current))
        patched = _patch_scale_doc(state, handle, scale, patch, kind, opts)
        replicas = _replicas_of(state, patched, name)
        try:
            return await _write_replicas(state, handle, current, replicas, opts)
        except ConflictError:
            continue
    raise conflict(handle.info.plural, handle.info.group, name, MODIFIED_MESSAGE)


def _patch_scale_doc(state: ServerState, handle: ResourceHandle, scale: Obj, patch: Any, kind: str,
                     opts: WriteOptions) -> Obj:
    from apiserver import patch as patching

    try:
        if kind != APPLY_PATCH:
            result = patching.apply_patch(scale, patch, kind, group="autoscaling", version="v1", kind="Scale",
                                          schemas=state.schemas)
        else:
            result = patching.server_side_apply(scale, patch, manager=opts.manager, force=opts.force,
                                                group="autoscaling", version="v1", kind="Scale",
                                                schemas=state.schemas)
    except ApiError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise bad_request(f"the patch could not be applied: {exc}") from None
    return result if isinstance(result, dict) else scale


# --- binding ----------------------------------------------------------------------------------------------


async def bind_pod(state: ServerState, pods: ResourceHandle, namespace: str, name: str | None, body: Any,
                   opts: WriteOptions) -> Obj:
    """POST pods/x/binding or namespaces/ns/bindings: set spec.nodeName once (the scheduler's only write)."""
    if not isinstance(body, dict) or body.get("kind") not in (None, "Binding"):
        raise bad_request("the body must be a v1 Binding")
    # Typed decoding in Kubernetes: a field of the wrong type is the client's error, never ours.
    check_schema(state, body, group="", version="v1", kind="Binding", name=str(name or ""), mode="Ignore")
    meta = body.get("metadata") or {}
    pod_name = name or meta.get("name")
    if not pod_name:
        raise ApiError(422, 'Binding "" is invalid: metadata.name: Required value: name is required', "Invalid")
    if name and meta.get("name") and meta["name"] != name:
        raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
    target = body.get("target") or {}
    node = target.get("name")
    if not node:
        raise ApiError(422, f'Binding "{pod_name}" is invalid: target.name: Required value', "Invalid",
                       {"name": pod_name, "kind": "Binding", "causes": [
                           {"field": "target.name", "reason": "FieldValueRequired", "message": "Required value"}]})
    if target.get("kind") not in (None, "", "Node"):
        raise ApiError(422, f'Binding "{pod_name}" is invalid: target.kind: Unsupported value', "Invalid")
    for _attempt in range(MAX_CONFLICT_RETRIES):
        current = await read_current(pods, namespace, pod_name)
        pod = from_kv(current)
        why = None
        if pod["metadata"].get("deletionTimestamp"):
            why = f"pod {pod_name} is being deleted, cannot be assigned to a host"
        elif pod.get("spec", {}).get("nodeName"):
            why = f"pod {pod_name} is already assigned to node \"{pod['spec']['nodeName']}\""
        if why:
            raise conflict("pods/binding", "", pod_name, why)
        pod.setdefault("spec", {})["nodeName"] = node
        mark_scheduled(pod)
        annotations = meta.get("annotations") or {}
        if annotations:
            pod["metadata"].setdefault("annotations", {}).update(annotations)
        if opts.dry_run:
            break
        try:
            await pods.storage.update(current.key, to_stored(pod), expected_revision=current.mod_revision)
        except ConflictError:
            continue
        break
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def mark_scheduled(pod: Obj) -> None:
    """PodScheduled=True, set by the binding itself as in Kubernetes (no separate status write by the scheduler).
    An existing condition keeps its lastTransitionTime when its status does not change."""
    conditions = pod.setdefault("status", {}).setdefault("conditions", [])
    scheduled = {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                 "lastTransitionTime": now_rfc3339()}
    for i, condition in enumerate(conditions):
        if condition.get("type") == "PodScheduled":
            if condition.get("status") == "True" and condition.get("lastTransitionTime"):
                scheduled["lastTransitionTime"] = condition["lastTransitionTime"]
            conditions[i] = scheduled
            return
    conditions.append(scheduled)


# --- eviction ---------------------------------------------------------------------------------------------


async def evict_pod(state: ServerState, pods: ResourceHandle, namespace: str, name: str, body: Any,
                    dry_run: bool) -> Obj:
    """policy/v1 Eviction → a graceful delete of the pod.

    PodDisruptionBudgets are not served by this API server yet, so no budget can refuse an eviction (429);
    once they are, this is where the budget check and its status update belong."""
    if not isinstance(body, dict) or body.get("kind") not in (None, "Eviction"):
        raise bad_request("the body must be a policy/v1 Eviction")
    check_schema(state, body, group="policy", version="v1", kind="Eviction", name=name, mode="Ignore")
    meta = body.get("metadata") or {}
    if meta.get("name") and meta["name"] != name:
        raise bad_request("name in URL does not match name in Eviction object")
    opts: DeleteOptions = parse_delete_options(body.get("deleteOptions") or {}, {}, dry_run)
    await delete_object(state, pods, namespace, name, opts)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


# --- namespace finalize -----------------------------------------------------------------------------------


async def finalize_namespace(state: ServerState, namespaces: ResourceHandle, name: str, body: Any,
                             opts: WriteOptions) -> Obj:
    """PUT namespaces/x/finalize changes only spec.finalizers; the emptying write of a terminating namespace
    removes it."""
    new_ns = check_type(body, namespaces)
    check_schema(state, new_ns, group="", version="v1", kind="Namespace", name=name, mode="Ignore")
    finalizers = (new_ns.get("spec") or {}).get("finalizers") or []
    for _attempt in range(MAX_CONFLICT_RETRIES):
        current = await read_current(namespaces, None, name)
        ns = from_kv(current)
        wanted_rv = new_ns["metadata"].get("resourceVersion")
        if wanted_rv and wanted_rv != str(current.mod_revision):
            raise conflict("namespaces", "", name, MODIFIED_MESSAGE)
        ns.setdefault("spec", {})["finalizers"] = list(finalizers)
        try:
            result, _ = await commit_update(state, namespaces, current, ns, opts, subresource="finalize",
                                            check_schema_of_new=False)
        except ConflictError:
            continue
        return result
    raise conflict("namespaces", "", name, MODIFIED_MESSAGE)
