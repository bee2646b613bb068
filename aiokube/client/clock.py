"""Time sources the client library reads, injectable so tests run without real sleeps.

`Clock` is the small protocol every time-dependent part (workqueue delays, rate limiters, informer backoff,
leader election) takes; `RealClock` is the asyncio event loop's monotonic time plus wall-clock UTC for
timestamps written into objects.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for delays and deadlines)."""
        ...

    def now(self) -> dt.datetime:
        """The current wall-clock time in UTC (for timestamps written into API objects)."""
        ...

    async def sleep(self, seconds: float) -> None:
        ...


class RealClock:
    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


REAL_CLOCK = RealClock()
