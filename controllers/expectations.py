"""Controller expectations: creates and deletes issued but not yet seen through the watch.

A controller that acts on a stale cache would create (or delete) twice. After issuing N creates it records
"expect N adds" and skips syncing replicas until the informer reports them (or the record expires after
5 minutes, the Kubernetes ExpectationsTimeout, in case an event was lost). Deletions are tracked by pod key,
so a pod noticed twice (deletionTimestamp update, then the delete) is counted once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controllers.timeutil import Clock, system_clock

EXPECTATIONS_TIMEOUT = 5 * 60.0


@dataclass
class _Record:
    adds: int
    deletes: set[str] = field(default_factory=set)
    timestamp: float = 0.0


class Expectations:
    def __init__(self, *, clock: Clock = system_clock, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._clock = clock
        self._timeout = timeout
        self._records: dict[str, _Record] = {}

    def satisfied(self, key: str) -> bool:
        """True when nothing is pending, or the record expired (then sync anyway)."""
        record = self._records.get(key)
        if record is None:
            return True
        if record.adds <= 0 and not record.deletes:
            return True
        return self._clock() - record.timestamp > self._timeout

    def expect_creations(self, key: str, count: int) -> None:
        self._records[key] = _Record(adds=count, timestamp=self._clock())

    def expect_deletions(self, key: str, pod_keys: list[str]) -> None:
        self._records[key] = _Record(adds=0, deletes=set(pod_keys), timestamp=self._clock())

    def creation_observed(self, key: str) -> None:
        record = self._records.get(key)
        if record is not None:
            record.adds -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        record = self._records.get(key)
        if record is not None:
            record.deletes.discard(pod_key)

    def forget(self, key: str) -> None:
        self._records.pop(key, None)

    def pending(self, key: str) -> tuple[int, int]:
        """(adds, deletes) still expected; for logs and tests."""
        record = self._records.get(key)
        return (0, 0) if record is None else (max(record.adds, 0), len(record.deletes))
