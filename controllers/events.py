"""Emitting Events without letting them slow down or fail a reconcile.

client-go's recorder hands events to a broadcaster and returns at once; a reconcile never waits for an Event
write. Here `emit` does the same: it snapshots the object reference and records the Event in a background task
(the recorder itself bounds concurrent writes and aggregates repeats). A failed Event is only logged, as in
Kubernetes. Waiting on writes inline used to put one Event round trip (behind the recorder's write limit)
into every pod creation. `drain()` lets a shutdown or a test wait for what is still in flight.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokube.api.types import Obj

log = logging.getLogger(__name__)

_in_flight: set[asyncio.Task[None]] = set()


def _reference(obj: Obj) -> Obj:
    """What the recorder reads of the involved object, copied now: the caller may change `obj` afterwards."""
    meta = obj.get("metadata", {})
    return {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""),
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if meta.get(k)}}


async def _record(recorder: Any, ref: Obj, event_type: str, reason: str, message: str) -> None:
    try:
        await recorder.event(ref, event_type, reason, message)
    except Exception as err:  # an Event is best effort by design
        log.debug("event %s for %s not recorded: %s", reason, ref["metadata"].get("name"), err)


async def emit(recorder: Any, obj: Obj, event_type: str, reason: str, message: str) -> None:
    if recorder is None:
        return
    task = asyncio.create_task(_record(recorder, _reference(obj), event_type, reason, message))
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)


async def drain(within: float = 5.0) -> None:
    """Wait (up to `within` seconds) for the Events still being written."""
    pending = [t for t in _in_flight if not t.done() and t.get_loop() is asyncio.get_running_loop()]
    if pending:
        await asyncio.wait(pending, timeout=within)
