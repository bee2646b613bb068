"""Wiring of every served resource: ResourceInfo → Strategy → storage keys → its (lazily started) watch cache.

Handlers receive a `ResourceHandle` and never compute keys or pick strategies themselves.
"""

from __future__ import annotations

import asyncio
import logging

from aiokube.api import resources
from aiokube.api.errors import ApiError
from aiokube.api.resources import ResourceInfo
from apiserver.storage.interface import Storage
from apiserver.strategies.base import Strategy
from apiserver.strategies.registry import strategy_for
from apiserver.watch_cache import WatchCache

log = logging.getLogger(__name__)


class ResourceHandle:
    """Everything the generic handlers need to serve one resource."""

    def __init__(self, info: ResourceInfo, strategy: Strategy, storage: Storage, root: str) -> None:
        self.info = info
        self.strategy = strategy
        self.storage = storage
        self.root = f"{root}/{info.storage_group}/{info.plural}/"
        self._watch: WatchCache | None = None
        # Encoded watch lines shared by every unfiltered JSON watcher of this resource: (revision, key) -> line
        self.event_lines: dict[tuple[int, str], bytes] = {}
        self._watch_lock = asyncio.Lock()
        self.closing = False  # set by stop(): no new watches, open ones end

    def key(self, namespace: str | None, name: str) -> str:
        return f"{self.root}{namespace}/{name}" if self.info.namespaced else f"{self.root}{name}"

    def prefix(self, namespace: str | None) -> str:
        """Keys of the collection: one namespace, or every namespace when `namespace` is None."""
        return f"{self.root}{namespace}/" if self.info.namespaced and namespace else self.root

    async def watch_cache(self) -> WatchCache:
        if self.closing:
            raise ApiError(503, "the API server is shutting down; watch another server or retry",
                           "ServiceUnavailable")
        if self._watch is None:
            async with self._watch_lock:
                if self._watch is None:
                    source = WatchCache(self.storage, self.root)
                    await source.start()
                    self._watch = source
        return self._watch

    async def stop(self) -> None:
        self.closing = True
        if self._watch is not None:
            await self._watch.stop()
            self._watch = None


class Registry:
    def __init__(self, storage: Storage, root: str) -> None:
        self.storage = storage
        self._by_gvr: dict[tuple[str, str, str], ResourceHandle] = {
            (info.group, info.version, info.plural): ResourceHandle(info, strategy_for(info), storage, root)
            for info in resources.RESOURCES
        }

    def get(self, group: str, version: str, plural: str) -> ResourceHandle | None:
        return self._by_gvr.get((group, version, plural))

    def handle(self, plural: str) -> ResourceHandle:
        info = resources.lookup(plural)
        return self._by_gvr[(info.group, info.version, info.plural)]

    def served_versions(self, group: str) -> list[str]:
        return [v for g, v, _ in self._by_gvr if g == group]

    async def stop(self) -> None:
        for handle in self._by_gvr.values():
            try:
                await handle.stop()
            except Exception:  # shutting down: log and keep closing the others
                log.exception("stopping the watch cache of %s failed", handle.info.plural)
