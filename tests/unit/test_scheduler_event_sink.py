"""EventSink: events are written in order by a few workers; a full queue drops and counts instead of blocking."""

from __future__ import annotations

import asyncio

from aiokube.api.types import Obj
from scheduler.event_sink import EventSink


class SlowRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0

    async def event(self, involved: Obj, type_: str, reason: str, message: str) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await self.gate.wait()
        self.in_flight -= 1
        self.events.append((involved["metadata"]["name"], reason))


def pod(name: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "default"}}


async def test_events_are_written_by_bounded_workers_and_drained() -> None:
    recorder = SlowRecorder()
    sink = EventSink(recorder, workers=2)  # type: ignore[arg-type]
    for i in range(10):
        sink.emit(pod(f"p{i}"), "Normal", "Scheduled", "ok")  # never blocks, even with writes stuck
    await asyncio.sleep(0.01)
    assert recorder.max_in_flight == 2 and sink.pending == 8
    recorder.gate.set()
    await sink.drain()
    assert sorted(recorder.events) == sorted((f"p{i}", "Scheduled") for i in range(10))
    assert sink.dropped == 0
    await sink.aclose()


async def test_a_full_queue_drops_and_counts() -> None:
    recorder = SlowRecorder()
    sink = EventSink(recorder, max_queued=3, workers=1)  # type: ignore[arg-type]
    for i in range(3):
        sink.emit(pod(f"p{i}"), "Normal", "Scheduled", "ok")
    await asyncio.sleep(0.01)  # the worker takes p0; p1 and p2 wait
    for i in range(3, 7):
        sink.emit(pod(f"p{i}"), "Normal", "Scheduled", "ok")
    assert sink.dropped == 3 and sink.pending == 3  # p3 took the freed slot; p4..p6 were dropped
    recorder.gate.set()
    await sink.drain()
    assert [name for name, _ in recorder.events] == ["p0", "p1", "p2", "p3"]
    await sink.aclose()
