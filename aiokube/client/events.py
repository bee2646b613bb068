"""Recording core/v1 Events about objects (client-go's EventRecorder with its aggregating correlator).

An event names the object it is about (`involvedObject`), a type (Normal/Warning), a machine-readable reason
and a human message. The same event repeated within `AGGREGATION_WINDOW` is not written again: the existing
Event's `count` and `lastTimestamp` are patched, which `kubectl describe` shows as "(x3 over 2m)".
Recording is best effort: failures are logged and never raised into the controller that records.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import OrderedDict
from dataclasses import dataclass

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.client.api_client import ApiClient
from aiokube.client.clock import REAL_CLOCK, Clock
from aiokube.client.timefmt import format_micro_time, format_time

log = logging.getLogger(__name__)

# client-go aggregates identical events seen within 10 minutes of the last one (its correlator's cache TTL).
AGGREGATION_WINDOW = 600.0
# Recording must never queue unbounded work behind a slow API server.
DEFAULT_MAX_CONCURRENT_WRITES = 8


@dataclass
class _Seen:
    namespace: str
    name: str
    count: int
    last_seen: float  # monotonic


def object_reference(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    ref: Obj = {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""), "name": meta.get("name", "")}
    for field, value in (("namespace", meta.get("namespace")), ("uid", meta.get("uid")),
                         ("resourceVersion", meta.get("resourceVersion"))):
        if value:
            ref[field] = value
    return ref


class EventRecorder:
    def __init__(self, client: ApiClient, component: str, *, host: str | None = None,
                 max_concurrent_writes: int = DEFAULT_MAX_CONCURRENT_WRITES, clock: Clock = REAL_CLOCK) -> None:
        self.client = client
        self.component = component
        self.host = host or socket.gethostname()
        self._clock = clock
        self._limit = asyncio.Semaphore(max_concurrent_writes)
        # Ordered by last sighting (oldest first) so expiry looks only at the front: a scan of every entry per
        # event made recording quadratic in the number of distinct events (one per scheduled pod).
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()

    async def event(self, involved: Obj, type_: str, reason: str, message: str) -> None:
        """Record one event about `involved`; never raises."""
        try:
            async with self._limit:
                await self._record(involved, type_, reason, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("recording event %s %s for %s failed: %r", type_, reason,
                        (involved.get("metadata") or {}).get("name"), exc)

    async def _record(self, involved: Obj, type_: str, reason: str, message: str) -> None:
        ref = object_reference(involved)
        # Events about cluster-scoped objects (nodes) live in "default", as client-go puts them.
        namespace = ref.get("namespace") or "default"
        key = (namespace, ref["kind"], ref["name"], ref.get("uid", ""), type_, reason, message)
        now_mono = self._clock.monotonic()
        self._expire(now_mono)
        now = self._clock.now()
        seen = self._seen.get(key)
        if seen is not None:
            seen.count += 1
            seen.last_seen = now_mono
            self._seen.move_to_end(key)
            patch = {"count": seen.count, "lastTimestamp": format_time(now)}
            try:
                await self.client.patch("events", seen.name, patch, seen.namespace, patch_type="merge")
                return
            except ApiError as exc:
                if exc.code != 404:
                    raise
                del self._seen[key]  # someone deleted it; start a new one
        name = f"{ref['name']}.{int(now.timestamp() * 1e9):x}"
        body: Obj = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": ref, "reason": reason, "message": message, "type": type_,
            "source": {"component": self.component, "host": self.host},
            "firstTimestamp": format_time(now), "lastTimestamp": format_time(now),
            "eventTime": format_micro_time(now), "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host, "action": reason,
        }
        self._seen[key] = _Seen(namespace, name, 1, now_mono)
        try:
            await self.client.create("events", body, namespace)
        except Exception:
            self._seen.pop(key, None)
            raise

    def _expire(self, now_mono: float) -> None:
        while self._seen:
            oldest = next(iter(self._seen.values()))
            if now_mono - oldest.last_seen <= AGGREGATION_WINDOW:
                return
            self._seen.popitem(last=False)
