"""Compactor: a background task that trims etcd's history to the last `retention` seconds.

Without compaction etcd keeps every revision forever. Kubernetes compacts every 5 minutes to the revision
it saw 5 minutes earlier; this does the same with both figures configurable: every `interval` seconds it
samples the store revision, and compacts to the newest sample that is at least `retention` seconds old. A
watch or list from a revision older than that then fails with CompactedError (HTTP 410 Expired), and
clients relist.

    compactor = Compactor(storage, interval=300, retention=300)
    task = asyncio.create_task(compactor.run())     # until cancelled
    await compactor.tick()                          # one step, for tests (with an injected clock)

Several API servers may each run one: compacting to a revision that another already compacted is harmless
(etcd answers "compacted", which is ignored).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from apiserver.storage.interface import CompactedError, Storage, StorageError

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 300.0  # seconds, as kube-apiserver's --etcd-compaction-interval
DEFAULT_RETENTION = 300.0


class Compactor:
    def __init__(self, storage: Storage, *, interval: float = DEFAULT_INTERVAL,
                 retention: float = DEFAULT_RETENTION, clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0 or retention < 0:
            raise ValueError("interval must be > 0 and retention >= 0")
        self._storage = storage
        self._interval = interval
        self._retention = retention
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()  # (when, store revision), oldest first
        self.compacted_revision = 0

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except StorageError as error:  # etcd away: try again next interval
                log.warning("compaction skipped: %s", error)
            except Exception:  # a bug here must not take the API server down with it
                log.exception("compaction failed; trying again next interval")
            await asyncio.sleep(self._interval)

    async def tick(self) -> int | None:
        """Sample the revision and compact what is older than the retention; return the revision compacted."""
        now = self._clock()
        self._samples.append((now, await self._storage.current_revision()))
        target: int | None = None
        while self._samples and self._samples[0][0] <= now - self._retention:
            target = self._samples.popleft()[1]
        if target is None or target <= self.compacted_revision:
            return None
        try:
            await self._storage.compact(target)
        except CompactedError:
            log.debug("revision %d was already compacted (by another API server?)", target)
        self.compacted_revision = target
        log.info("compacted etcd history up to revision %d", target)
        return target
