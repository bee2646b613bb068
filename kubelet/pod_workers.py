"""One worker per pod UID: updates for a pod never sync concurrently, and pending ones collapse into one.

`update(uid)` marks the pod dirty and makes sure its worker runs; the worker syncs until no update arrived
during the last sync (the sync itself reads the newest pod object, so there is nothing to queue but a flag).
`update_after(uid, delay)` schedules a later sync (back-off expiry, periodic resync).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

ERROR_RETRY_DELAY = 2.0  # seconds before a sync that raised is tried again


class PodWorkers:
    def __init__(self, sync: Callable[[str], Awaitable[None]], *, error_retry_delay: float = ERROR_RETRY_DELAY) -> None:
        self._sync = sync
        self.error_retry_delay = error_retry_delay
        self._dirty: set[str] = set()
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._closed = False

    def update(self, uid: str) -> None:
        if self._closed:
            return
        self._dirty.add(uid)
        if uid not in self._workers:
            self._workers[uid] = asyncio.create_task(self._work(uid), name=f"pod-worker-{uid}")

    def update_after(self, uid: str, delay: float) -> None:
        """Sync `uid` after `delay` seconds; an earlier pending timer wins over a later one."""
        loop = asyncio.get_running_loop()
        existing = self._timers.get(uid)
        when = loop.time() + delay
        if existing is not None and existing.when() <= when:
            return
        if existing is not None:
            existing.cancel()
        self._timers[uid] = loop.call_at(when, self._fire, uid)

    def _fire(self, uid: str) -> None:
        self._timers.pop(uid, None)
        self.update(uid)

    def busy(self, uid: str) -> bool:
        return uid in self._workers

    async def _work(self, uid: str) -> None:
        try:
            while uid in self._dirty and not self._closed:
                self._dirty.discard(uid)
                try:
                    await self._sync(uid)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("sync of pod %s failed; retrying in %.1fs", uid, self.error_retry_delay)
                    self.update_after(uid, self.error_retry_delay)
        finally:
            self._workers.pop(uid, None)

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 - a bound, not a cancellation scope
        """Accept no new work and let syncs in flight finish (a CRI call cut short can leave half-torn-down
        networking behind), up to `timeout` seconds."""
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        workers = list(self._workers.values())
        if workers:
            await asyncio.wait(workers, timeout=timeout)

    async def close(self) -> None:
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
