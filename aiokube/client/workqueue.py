"""The work queue controllers pull keys from (client-go's rate-limiting delaying workqueue).

Invariants, as in client-go:
- a key waiting in the queue is there once, however often it was added (`dirty` set);
- a key being processed (between `get()` and `done()`) is in `processing` and is never handed to a second
  worker; if it is added meanwhile it is marked dirty and queued again when `done()` is called.
`add_after` holds a key back until a delay passes (only the earliest pending time counts), and
`add_rate_limited` asks the rate limiter for that delay. The clock is injected so tests need not sleep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque

from aiokube.client.clock import REAL_CLOCK, Clock
from aiokube.client.ratelimit import RateLimiter, default_controller_rate_limiter


class WorkQueue:
    def __init__(self, name: str = "", *, rate_limiter: RateLimiter | None = None,
                 clock: Clock = REAL_CLOCK) -> None:
        self.name = name
        self._clock = clock
        self.rate_limiter = rate_limiter if rate_limiter is not None else default_controller_rate_limiter(clock)
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        # Delayed keys: a heap of (ready_at, sequence, key); _waiting_until holds the live entry per key, so
        # superseded heap entries are skipped when they come up.
        self._delayed: list[tuple[float, int, str]] = []
        self._waiting_until: dict[str, float] = {}
        self._sequence = itertools.count()
        self._wakeup = asyncio.Event()
        self._shutting_down = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: str) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # queued again by done()
        self._queue.append(key)
        self._notify()

    def add_after(self, key: str, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        ready_at = self._clock.monotonic() + delay
        current = self._waiting_until.get(key)
        if current is not None and current <= ready_at:
            return  # an earlier wake-up is already pending
        self._waiting_until[key] = ready_at
        heapq.heappush(self._delayed, (ready_at, next(self._sequence), key))
        self._notify()  # a sleeping get() may need to wake earlier

    def add_rate_limited(self, key: str) -> None:
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: str) -> None:
        """Clear the key's failure history (after it was processed successfully)."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: str) -> int:
        return self.rate_limiter.num_requeues(key)

    async def get(self) -> str | None:
        """The next key to process (now marked processing), or None once the queue shuts down."""
        while True:
            if self._shutting_down:
                return None
            self._promote_due()
            if self._queue:
                key = self._queue.popleft()
                self._processing.add(key)
                self._dirty.discard(key)
                return key
            await self._wait_for_change()

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._notify()

    def shutdown(self) -> None:
        self._shutting_down = True
        self._notify()

    def _promote_due(self) -> None:
        now = self._clock.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._delayed)
            if self._waiting_until.get(key) == ready_at:
                del self._waiting_until[key]
                self.add(key)

    def _notify(self) -> None:
        # Waking every waiter is cheap here and simple: each re-checks the queue; a fresh Event serves the
        # next round of waiters.
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    async def _wait_for_change(self) -> None:
        wakeup = self._wakeup
        if not self._delayed:
            await wakeup.wait()
            return
        delay = self._delayed[0][0] - self._clock.monotonic()
        waiter = asyncio.ensure_future(wakeup.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()
