"""Rate limiters deciding how long a failed work item waits before it is retried (client-go's workqueue
rate limiters).

`when(key)` records one more failure of `key` and returns its delay; `forget(key)` clears its history after a
success. The default combines a per-item exponential backoff (one broken object backs off on its own) with a
global token bucket (many failing objects together cannot flood the API server).
"""

from __future__ import annotations

from typing import Protocol

from aiokube.client.clock import REAL_CLOCK, Clock


class RateLimiter(Protocol):
    def when(self, key: str) -> float: ...
    def forget(self, key: str) -> None: ...
    def num_requeues(self, key: str) -> int: ...


class ItemExponentialRateLimiter:
    """base * 2^failures per key, capped: 5 ms, 10 ms, 20 ms … up to 1000 s with client-go's defaults."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        if failures > 64:  # 2**64 overflows any useful delay; avoid huge floats
            return self.max_delay
        return min(self.base_delay * (2 ** failures), self.max_delay)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)


class TokenBucketRateLimiter:
    """A global bucket: `qps` tokens per second, at most `burst` saved up; each retry takes one."""

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Clock = REAL_CLOCK) -> None:
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last: float | None = None

    def when(self, key: str) -> float:
        now = self._clock.monotonic()
        if self._last is not None:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1
        # A negative balance is a reservation: this caller waits until the tokens it borrowed have refilled.
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, key: str) -> None:
        pass

    def num_requeues(self, key: str) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay of several limiters; failures counted by the one that counts most."""

    def __init__(self, *limiters: RateLimiter) -> None:
        self.limiters = limiters

    def when(self, key: str) -> float:
        return max(limiter.when(key) for limiter in self.limiters)

    def forget(self, key: str) -> None:
        for limiter in self.limiters:
            limiter.forget(key)

    def num_requeues(self, key: str) -> int:
        return max(limiter.num_requeues(key) for limiter in self.limiters)


def default_controller_rate_limiter(clock: Clock = REAL_CLOCK) -> MaxOfRateLimiter:
    """client-go's DefaultControllerRateLimiter: per-item 5 ms → 1000 s, overall 10 qps with burst 100."""
    return MaxOfRateLimiter(ItemExponentialRateLimiter(0.005, 1000.0), TokenBucketRateLimiter(10.0, 100, clock))
