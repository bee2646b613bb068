"""Pod events from the node (Started, Killing, BackOff, Failed…) recorded in the background.

A sync must never wait on event writes, so each event becomes a task owned by `PodEvents`; `close()` cancels
what is still pending at shutdown.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiokube.api.types import Obj


class Recorder(Protocol):
    async def event(self, involved: Obj, type_: str, reason: str, message: str) -> None: ...


class PodEvents:
    def __init__(self, recorder: Recorder | None) -> None:
        self.recorder = recorder
        self._tasks: set[asyncio.Task[None]] = set()

    def emit(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        if self.recorder is None:
            return
        # List items from the informer carry no kind; the event's involvedObject needs it.
        involved = {**pod, "kind": "Pod", "apiVersion": "v1"}
        task = asyncio.create_task(self.recorder.event(involved, type_, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
