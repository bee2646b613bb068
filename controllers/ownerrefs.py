"""ownerReferences helpers: the controller reference, building one, and keys of objects.

A dependent has at most one owner reference with `controller: true`; that owner is the one that manages it
(adoption, release and the `Controlled By` kubectl shows).
"""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj


def object_key(obj: Obj) -> str:
    """`namespace/name` or `name` for cluster-scoped objects (the informer/workqueue key, contracts.md)."""
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def split_key(key: str) -> tuple[str | None, str]:
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else (None, key)


def owner_refs(obj: Obj) -> list[dict[str, Any]]:
    return list(obj.get("metadata", {}).get("ownerReferences") or [])


def controller_of(obj: Obj) -> dict[str, Any] | None:
    for ref in owner_refs(obj):
        if ref.get("controller"):
            return ref
    return None


def controller_ref_for(owner: Obj) -> dict[str, Any]:
    """The reference a controller puts on what it creates (blockOwnerDeletion: foreground deletion waits)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def uid_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("uid", ""))


def is_deleting(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))
