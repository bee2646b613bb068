"""ObjectCache: an in-memory copy of one resource's objects, kept current by the resource's watch cache.
StoreFollower is its list-then-watch loop, for caches that keep something other than whole objects
(node_graph.py keeps only the references of each bound pod).

The authorizer consults RBAC objects on every request; reading etcd each time would put storage on the hot
path of every call. This is the informer pattern inside the API server: list the prefix at a revision, then
subscribe to the resource's WatchCache after that revision (no gap, no duplicate), and relist when the
subscription ends (history compacted, or the subscriber fell behind).

`revision` is the newest store revision applied; `wait_for(revision)` lets a caller that just wrote an object
see its own write (the tests do; Kubernetes' RBAC has the same brief lag after a write).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson

from aiokube.api.types import Obj
from apiserver.storage.interface import Storage, StorageError, WatchEvent
from apiserver.watch_cache import WatchCache, WatcherTooSlowError

log = logging.getLogger(__name__)

RELIST_BACKOFF_START = 0.1
RELIST_BACKOFF_CAP = 5.0


class StoreFollower:
    """Lists one resource's prefix, then applies every later change; subclasses say what to keep."""

    def __init__(self, storage: Storage, prefix: str, watch_cache: Callable[[], Awaitable[WatchCache]], *,
                 namespaced: bool) -> None:
        self._storage = storage
        self._prefix = prefix
        # The resource's shared WatchCache, which the registry starts on first use.
        self._watch_cache_factory = watch_cache
        self._watch_cache: WatchCache | None = None
        self._namespaced = namespaced
        self._revision = 0
        self._advanced = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    @property
    def revision(self) -> int:
        return self._revision

    async def start(self) -> None:
        """List once (so the cache is complete when this returns), then follow changes in the background."""
        self._watch_cache = await self._watch_cache_factory()
        await self._relist()
        self._task = asyncio.create_task(self._follow(), name=f"object-cache {self._prefix}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def wait_for(self, revision: int) -> None:
        """Wait until the cache has applied `revision` (or a later one); bound it with `asyncio.timeout`."""
        async with self._advanced:
            await self._advanced.wait_for(lambda: self._revision >= revision)

    # --- what subclasses keep --------------------------------------------------------------------------------

    def _replace_all(self, objects: list[tuple[str, str, Obj]]) -> None:
        """A fresh complete listing of (namespace, name, object)."""
        raise NotImplementedError

    def _put(self, namespace: str, name: str, obj: Obj) -> None:
        raise NotImplementedError

    def _remove(self, namespace: str, name: str) -> None:
        raise NotImplementedError

    # --- internals -------------------------------------------------------------------------------------------

    def _split(self, key: str) -> tuple[str, str]:
        rest = key[len(self._prefix):]
        if self._namespaced:
            namespace, _, name = rest.partition("/")
            return namespace, name
        return "", rest

    async def _relist(self) -> None:
        listing = await self._storage.list(self._prefix)
        self._replace_all([(*self._split(kv.key), orjson.loads(kv.value)) for kv in listing.items])
        await self._advance(listing.revision)

    async def _advance(self, revision: int) -> None:
        async with self._advanced:
            self._revision = max(self._revision, revision)
            self._advanced.notify_all()

    def _apply(self, event: WatchEvent) -> None:
        namespace, name = self._split(event.key)
        if event.type == "DELETE" or event.value is None:
            self._remove(namespace, name)
        else:
            self._put(namespace, name, orjson.loads(event.value))

    async def _follow(self) -> None:
        assert self._watch_cache is not None
        backoff = RELIST_BACKOFF_START
        while True:
            try:
                async with self._watch_cache.subscribe(after_revision=self._revision) as events:
                    async for event in events:
                        self._apply(event)
                        await self._advance(event.revision)
                        backoff = RELIST_BACKOFF_START
                # The watch cache stopped (API server shutting down): nothing more will come.
                return
            except (StorageError, WatcherTooSlowError) as error:
                log.warning("cache %s: %s; relisting", self._prefix, error)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RELIST_BACKOFF_CAP)
            try:
                await self._relist()
            except StorageError as error:
                log.warning("cache %s: relist failed: %s", self._prefix, error)


class ObjectCache(StoreFollower):
    """Objects under `prefix` (one resource's root), indexed by namespace ("" for cluster-scoped) and name."""

    def __init__(self, storage: Storage, prefix: str, watch_cache: Callable[[], Awaitable[WatchCache]], *,
                 namespaced: bool) -> None:
        super().__init__(storage, prefix, watch_cache, namespaced=namespaced)
        self._by_namespace: dict[str, dict[str, Obj]] = {}

    def get(self, namespace: str, name: str) -> Obj | None:
        return self._by_namespace.get(namespace if self._namespaced else "", {}).get(name)

    def in_namespace(self, namespace: str) -> list[Obj]:
        return list(self._by_namespace.get(namespace if self._namespaced else "", {}).values())

    def all(self) -> list[Obj]:
        return [obj for objs in self._by_namespace.values() for obj in objs.values()]

    def _replace_all(self, objects: list[tuple[str, str, Obj]]) -> None:
        fresh: dict[str, dict[str, Obj]] = {}
        for namespace, name, obj in objects:
            fresh.setdefault(namespace, {})[name] = obj
        self._by_namespace = fresh

    def _put(self, namespace: str, name: str, obj: Obj) -> None:
        self._by_namespace.setdefault(namespace, {})[name] = obj

    def _remove(self, namespace: str, name: str) -> None:
        objs = self._by_namespace.get(namespace)
        if objs is not None:
            objs.pop(name, None)
            if not objs:
                del self._by_namespace[namespace]
