"""Writes into a namespace need the namespace to exist and not be terminating (Kubernetes' NamespaceLifecycle)."""

from __future__ import annotations

import orjson

from aiokube.api.errors import ApiError, not_found
from apiserver.handlers.state import ServerState


async def check_namespace_writable(state: ServerState, namespace: str, *, creating: bool = True) -> None:
    handle = state.registry.handle("namespaces")
    kv = await handle.storage.get(handle.key(None, namespace))
    if kv is None:
        raise not_found("namespaces", "", namespace)
    if creating and b'"deletionTimestamp"' in kv.value:
        ns = orjson.loads(kv.value)
        if ns.get("metadata", {}).get("deletionTimestamp"):
            raise ApiError(403, f"unable to create new content in namespace {namespace} because it is being "
                                f"terminated", "Forbidden",
                           {"name": namespace, "kind": "namespaces", "causes": [
                               {"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                "message": f"namespace {namespace} is being terminated"}]})
