"""Test doubles for code built on aiokube.client: a manually advanced clock.

`FakeClock.sleep()` parks the caller until a test calls `advance()`, so delays of minutes (backoff, resync,
lease expiry) are tested in microseconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools


class FakeClock:
    def __init__(self, start: dt.datetime | None = None) -> None:
        self.time = 0.0
        self._epoch = start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._sequence = itertools.count()

    def monotonic(self) -> float:
        return self.time

    def now(self) -> dt.datetime:
        return self._epoch + dt.timedelta(seconds=self.time)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.time + seconds, next(self._sequence), future))
        await future

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (cancelled ones excluded)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        live = [d for d, _, f in self._sleepers if not f.done()]
        return min(live) if live else None

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking sleepers in deadline order and letting them run before going on."""
        target = self.time + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self.time = max(self.time, deadline)
            if not future.done():
                future.set_result(None)
                await settle()
        self.time = target
        await settle()


async def settle(rounds: int = 20) -> None:
    """Let every ready task run until the loop has nothing left to do right now."""
    for _ in range(rounds):
        await asyncio.sleep(0)
