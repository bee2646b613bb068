"""Object keys: the "namespace/name" (or "name" for cluster-scoped objects) strings that stores and
workqueues carry instead of objects."""

from __future__ import annotations

from aiokube.api.types import Obj


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    name = meta.get("name") or ""
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str | None, str]:
    """"ns/name" -> ("ns", "name"); "name" -> (None, "name")."""
    namespace, sep, name = key.partition("/")
    if not sep:
        return None, key
    return namespace, name
