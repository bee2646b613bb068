"""Emitting Events without letting a failed Event fail a reconcile (Kubernetes drops them too)."""

from __future__ import annotations

import logging
from typing import Any

from aiokube.api.types import Obj

log = logging.getLogger(__name__)


async def emit(recorder: Any, obj: Obj, event_type: str, reason: str, message: str) -> None:
    if recorder is None:
        return
    try:
        await recorder.event(obj, event_type, reason, message)
    except Exception as err:  # an Event is best effort by design
        log.debug("event %s for %s not recorded: %s", reason, obj.get("metadata", {}).get("name"), err)
