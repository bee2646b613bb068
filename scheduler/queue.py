"""The scheduling queue: which pending pod to try next, and when to try a failed one again.

Three places a pod can wait:

- activeQ: ready now, ordered by priority (higher first) then by when it entered the queue (older first);
- backoffQ: failed recently; waits `initial_backoff * 2^(attempts-1)` seconds, capped at `max_backoff`
  (1 s → 10 s, Kubernetes' podInitialBackoffSeconds / podMaxBackoffSeconds), then moves to activeQ;
- unschedulable: no node fits; stays until a cluster event that could make it fit (node added or changed,
  an assigned pod deleted) moves it to backoffQ/activeQ, or `unschedulable_timeout` (5 min) passes.

A move event that arrives while a pod is being scheduled would otherwise be lost (the pod is in no queue at
that moment), so the queue remembers the scheduling cycle of the last move request: a pod that fails in a cycle
that started before it goes to backoffQ instead of unschedulable.

The clock is injected (`clock()` returns monotonic seconds) so tests drive backoff without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from scheduler.podinfo import PodInfo

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
UNSCHEDULABLE_TIMEOUT = 300.0
FLUSH_INTERVAL = 0.05


@dataclass
class QueuedPod:
    info: PodInfo
    timestamp: float  # when it (re-)entered the queue; orders equal priorities
    attempts: int = 0
    backoff_until: float = 0.0
    unschedulable_since: float = 0.0
    cycle: int = 0  # the scheduling cycle that last popped it
    seq: int = field(default=0)

    @property
    def key(self) -> str:
        return self.info.key


class SchedulingQueue:
    def __init__(self, clock: Callable[[], float], *, initial_backoff: float = INITIAL_BACKOFF,
                 max_backoff: float = MAX_BACKOFF, unschedulable_timeout: float = UNSCHEDULABLE_TIMEOUT) -> None:
        self.clock = clock
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.unschedulable_timeout = unschedulable_timeout
        self._active: list[tuple[int, float, int, str]] = []  # (-priority, timestamp, seq, key); lazy deletion
        self._active_live: dict[str, int] = {}  # key -> seq of its current heap entry
        self._backoff: dict[str, QueuedPod] = {}
        self._unschedulable: dict[str, QueuedPod] = {}
        self._pods: dict[str, QueuedPod] = {}  # every pod in one of the three places
        self._in_flight: dict[str, QueuedPod] = {}  # popped, being scheduled
        self._seq = itertools.count()
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._wakeup = asyncio.Event()
        self._next_flush = float("-inf")

    # ---- bookkeeping ----------------------------------------------------------------------------------
    def _push_active(self, qp: QueuedPod) -> None:
        qp.seq = next(self._seq)
        self._backoff.pop(qp.key, None)
        self._unschedulable.pop(qp.key, None)
        self._pods[qp.key] = qp
        self._active_live[qp.key] = qp.seq
        heapq.heappush(self._active, (-qp.info.priority, qp.timestamp, qp.seq, qp.key))
        self._wakeup.set()

    def _push_backoff(self, qp: QueuedPod) -> None:
        self._active_live.pop(qp.key, None)
        self._unschedulable.pop(qp.key, None)
        self._pods[qp.key] = qp
        self._backoff[qp.key] = qp

    def _backoff_duration(self, attempts: int) -> float:
        return min(self.initial_backoff * 2 ** max(attempts - 1, 0), self.max_backoff)

    def __len__(self) -> int:
        return len(self._pods)

    def __contains__(self, key: str) -> bool:
        return key in self._pods or key in self._in_flight

    def where(self, key: str) -> str | None:
        """"active", "backoff", "unschedulable", "in-flight" or None (for tests and debugging)."""
        if key in self._in_flight:
            return "in-flight"
        if key in self._active_live:
            return "active"
        if key in self._backoff:
            return "backoff"
        if key in self._unschedulable:
            return "unschedulable"
        return None

    # ---- informer-driven changes ----------------------------------------------------------------------
    def add(self, info: PodInfo) -> None:
        if info.key in self._pods or info.key in self._in_flight:
            self.update(info)
            return
        self._push_active(QueuedPod(info=info, timestamp=self.clock()))

    def update(self, info: PodInfo) -> None:
        """A pending pod changed; an unschedulable one gets another chance (its spec may now fit)."""
        if info.key in self._in_flight:
            self._in_flight[info.key].info = info
            return
        qp = self._pods.get(info.key)
        if qp is None:
            self.add(info)
            return
        priority_changed = qp.info.priority != info.priority
        qp.info = info
        if info.key in self._unschedulable:
            self._requeue_after_event(qp)
        elif info.key in self._active_live and priority_changed:
            self._push_active(qp)

    def refresh(self, info: PodInfo) -> None:
        """Replace the stored object without giving the pod another chance (e.g. our own status write)."""
        qp = self._in_flight.get(info.key) or self._pods.get(info.key)
        if qp is not None:
            qp.info = info

    def delete(self, key: str) -> None:
        self._pods.pop(key, None)
        self._active_live.pop(key, None)
        self._backoff.pop(key, None)
        self._unschedulable.pop(key, None)
        self._in_flight.pop(key, None)

    # ---- the scheduling loop's side -------------------------------------------------------------------
    def pop_nowait(self) -> QueuedPod | None:
        self.flush_backoff()
        while self._active:
            _, _, seq, key = heapq.heappop(self._active)
            if self._active_live.get(key) != seq:
                continue  # superseded or deleted entry
            del self._active_live[key]
            qp = self._pods.pop(key)
            self.scheduling_cycle += 1
            qp.cycle = self.scheduling_cycle
            qp.attempts += 1
            self._in_flight[key] = qp
            return qp
        self._wakeup.clear()
        return None

    async def pop(self, poll_interval: float = 0.2) -> QueuedPod:
        """Wait for the next pod; wakes on additions, and every `poll_interval` to release backed-off pods."""
        while True:
            qp = self.pop_nowait()
            if qp is not None:
                return qp
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=poll_interval)
            except TimeoutError:
                pass

    def done(self, key: str) -> None:
        """The pod left the scheduling cycle for good (assumed and sent to binding, or deleted)."""
        self._in_flight.pop(key, None)

    def add_unschedulable(self, qp: QueuedPod) -> None:
        """No node fits. Park it, unless a move event arrived during its cycle (then only back off)."""
        self._in_flight.pop(qp.key, None)
        now = self.clock()
        qp.backoff_until = now + self._backoff_duration(qp.attempts)
        if self.move_request_cycle >= qp.cycle:
            self._push_backoff(qp)
            return
        qp.unschedulable_since = now
        self._pods[qp.key] = qp
        self._active_live.pop(qp.key, None)
        self._unschedulable[qp.key] = qp

    def add_backoff(self, qp: QueuedPod) -> None:
        """An error (binding failed, API error): retry after the pod's backoff."""
        self._in_flight.pop(qp.key, None)
        qp.backoff_until = self.clock() + self._backoff_duration(qp.attempts)
        self._push_backoff(qp)

    def _requeue_after_event(self, qp: QueuedPod) -> None:
        if qp.backoff_until > self.clock():
            self._push_backoff(qp)
        else:
            self._push_active(qp)

    def move_all(self, could_help: Callable[[PodInfo], bool] | None = None) -> int:
        """A cluster event: unschedulable pods it could help go to backoffQ (still backing off) or activeQ."""
        self.move_request_cycle = self.scheduling_cycle
        moved = 0
        for qp in list(self._unschedulable.values()):
            if could_help is None or could_help(qp.info):
                self._requeue_after_event(qp)
                moved += 1
        return moved

    def flush_backoff(self) -> None:
        now = self.clock()
        # Scanning is O(waiting pods); pop() calls this for every pod, so scan at most every 50 ms.
        if now < self._next_flush:
            return
        self._next_flush = now + FLUSH_INTERVAL
        if self._backoff:
            for qp in [qp for qp in self._backoff.values() if qp.backoff_until <= now]:
                self._push_active(qp)
        if self._unschedulable:
            for qp in [qp for qp in self._unschedulable.values()
                       if now - qp.unschedulable_since >= self.unschedulable_timeout]:
                self._requeue_after_event(qp)

    def pending(self) -> list[PodInfo]:
        return [qp.info for qp in self._pods.values()]
