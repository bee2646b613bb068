"""Fire-and-forget event recording for the scheduling loop: a bounded queue drained by a few workers.

The scheduler records an Event for every pod it places (as kube-scheduler does). Spawning a task per event
costs a task, a semaphore wait and a closure per pod; here an event is one queue append, and a fixed number of
workers write them. When the API server falls behind and the queue is full, new events are dropped and
counted, as client-go's event broadcaster drops events when its queue is full: events are informational
and must never hold up or grow the scheduler without bound.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiokube.api.types import Obj

if TYPE_CHECKING:
    from aiokube.client import EventRecorder

log = logging.getLogger(__name__)

# Deep enough that a burst of tens of thousands of placements keeps every Scheduled event (the workers catch
# up after the burst); an entry only references the pod object the scheduler already holds, so ~100 bytes.
DEFAULT_QUEUE_SIZE = 25_000
DEFAULT_WORKERS = 4


class EventSink:
    def __init__(self, recorder: EventRecorder, *, max_queued: int = DEFAULT_QUEUE_SIZE,
                 workers: int = DEFAULT_WORKERS) -> None:
        self.recorder = recorder
        self._queue: asyncio.Queue[tuple[Obj, str, str, str]] = asyncio.Queue(max_queued)
        self._workers_wanted = workers
        self._workers: list[asyncio.Task[None]] = []
        self.dropped = 0

    def emit(self, involved: Obj, type_: str, reason: str, message: str) -> None:
        """Queue one event; never blocks (drops and counts when the queue is full)."""
        if not self._workers:
            self._start()
        try:
            self._queue.put_nowait((involved, type_, reason, message))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("event queue full: %d events dropped so far", self.dropped)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _start(self) -> None:
        self._workers = [asyncio.create_task(self._work(), name="scheduler events")
                         for _ in range(self._workers_wanted)]

    async def _work(self) -> None:
        while True:
            involved, type_, reason, message = await self._queue.get()
            try:
                await self.recorder.event(involved, type_, reason, message)  # never raises but for cancellation
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued event has been written (tests)."""
        await self._queue.join()

    async def aclose(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
