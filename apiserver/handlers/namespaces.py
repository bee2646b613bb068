"""Writes into a namespace need the namespace to exist and not be terminating (Kubernetes' NamespaceLifecycle).

Like Kubernetes' admission plugin, the check reads a local cache of namespaces fed by the namespaces' watch
cache, and falls back to a live read on a miss (a namespace created a moment ago may not be cached yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson

from aiokube.api.errors import ApiError, not_found
from apiserver.registry import ResourceHandle

log = logging.getLogger(__name__)


def _terminating(value: bytes) -> bool:
    if b'"deletionTimestamp"' not in value:
        return False
    return bool(orjson.loads(value).get("metadata", {}).get("deletionTimestamp"))


class NamespaceLifecycle:
    def __init__(self, namespaces: ResourceHandle) -> None:
        self._handle = namespaces
        self._terminating: dict[str, bool] = {}  # name -> being deleted; absent = unknown (read live)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        cache = await self._handle.watch_cache()
        page = await self._handle.storage.list(self._handle.root)
        for kv in page.items:
            self._terminating[kv.key[len(self._handle.root):]] = _terminating(kv.value)
        subscription = cache.subscribe(after_revision=page.revision)
        self._task = asyncio.create_task(self._follow(subscription), name="namespace-lifecycle")

    async def _follow(self, subscription: object) -> None:
        try:
            async for ev in subscription:  # type: ignore[attr-defined]
                name = ev.key[len(self._handle.root):]
                if ev.type == "DELETE" or ev.value is None:
                    self._terminating.pop(name, None)
                else:
                    self._terminating[name] = _terminating(ev.value)
        except Exception as exc:  # the cache ended (compaction, slowness): read live from now on
            log.warning("namespace cache stopped following changes (%s); checks read etcd directly", exc)
        finally:
            self._terminating.clear()
            subscription.close()  # type: ignore[attr-defined]
            self._task = None

    def note_terminating(self, namespace: str) -> None:
        """Write-through from this server's own namespace DELETE, so the next write here sees it at once."""
        if namespace in self._terminating:
            self._terminating[namespace] = True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check_writable(self, namespace: str, *, creating: bool = True) -> None:
        terminating = self._terminating.get(namespace) if self._task is not None else None
        if terminating is None:
            kv = await self._handle.storage.get(self._handle.key(None, namespace))
            if kv is None:
                raise not_found("namespaces", "", namespace)
            terminating = _terminating(kv.value)
        if creating and terminating:
            raise ApiError(403, f"unable to create new content in namespace {namespace} because it is being "
                                f"terminated", "Forbidden",
                           {"name": namespace, "kind": "namespaces", "causes": [
                               {"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                "message": f"namespace {namespace} is being terminated"}]})
