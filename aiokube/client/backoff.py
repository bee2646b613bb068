"""Exponential backoff with jitter for loops that retry after failures (informer list/watch)."""

from __future__ import annotations

import random


class ExponentialBackoff:
    def __init__(self, initial: float, cap: float, factor: float = 2.0, jitter: float = 0.5,
                 rand: random.Random | None = None) -> None:
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self._rand = rand or random.Random()
        self._current = initial

    def next_delay(self) -> float:
        """The delay to wait now; each call without a reset() multiplies the next one, up to the cap."""
        base = self._current
        self._current = min(self._current * self.factor, self.cap)
        # Jitter (up to +50% by default) spreads out clients that failed at the same moment.
        return min(base * (1 + self.jitter * self._rand.random()), self.cap * (1 + self.jitter))

    def reset(self) -> None:
        self._current = self.initial
