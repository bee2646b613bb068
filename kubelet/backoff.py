"""Per-key exponential back-off for restarts and image pulls (the kubelet's flowcontrol.Backoff).

A key's delay starts at `initial` and doubles on every `next()` up to `maximum`; an entry untouched for
`reset_after` (default 2 * maximum: 10 minutes for the 5-minute cap, as in the kubelet) starts over. The clock is
injected so tests need no sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_INITIAL = 10.0  # seconds, kubelet's container restart back-off base
DEFAULT_MAXIMUM = 300.0  # seconds, kubelet's MaxContainerBackOff


@dataclass
class _Entry:
    delay: float
    last_update: float


class Backoff:
    def __init__(
        self,
        initial: float = DEFAULT_INITIAL,
        maximum: float = DEFAULT_MAXIMUM,
        *,
        reset_after: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.reset_after = reset_after if reset_after is not None else 2 * maximum
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def _expired(self, entry: _Entry, event_time: float) -> bool:
        return event_time - entry.last_update > self.reset_after

    def next(self, key: str, event_time: float | None = None) -> float:
        """Record one more failure at `event_time`; return the delay now in force for `key`."""
        event_time = self.clock() if event_time is None else event_time
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            entry = self._entries[key] = _Entry(self.initial, event_time)
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.last_update = event_time
        return entry.delay

    def get(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def remaining(self, key: str, event_time: float) -> float:
        """Seconds left before `key` may be retried, counted from `event_time` (e.g. the last exit)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            return 0.0
        return max(0.0, event_time + entry.delay - self.clock())

    def in_backoff_since(self, key: str, event_time: float) -> bool:
        return self.remaining(key, event_time) > 0

    def in_backoff_since_update(self, key: str) -> bool:
        """Is `key` still waiting after its last recorded failure (image pulls count from the failure)?"""
        entry = self._entries.get(key)
        now = self.clock()
        if entry is None or self._expired(entry, now):
            return False
        return now - entry.last_update < entry.delay

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def gc(self) -> None:
        """Drop entries idle long enough to have reset anyway (bounded memory for long-lived nodes)."""
        now = self.clock()
        for key in [k for k, e in self._entries.items() if self._expired(e, now)]:
            del self._entries[key]
