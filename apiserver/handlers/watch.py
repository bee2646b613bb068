"""Watch streams: newline-delimited JSON events from the resource's WatchCache.

resourceVersion unset/"0": synthetic ADDED events for the current list (at revision R), then every change
after R; N: every change after N. Selectors have transition semantics (entering → ADDED, leaving → DELETED),
decided from each event's prev_value. A compacted N ends the stream with an ERROR event carrying 410.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import orjson

from aiokube.api.errors import ApiError, expired, status_for
from aiokube.api.types import Obj
from apiserver.handlers.common import go_bool, query_int, resource_version_param, with_type
from apiserver.handlers.read import too_large_resource_version
from apiserver.handlers.selection import Selection
from apiserver.handlers.state import ServerState
from apiserver.registry import ResourceHandle
from apiserver.storage.interface import CompactedError, StorageError, WatchEvent
from apiserver.tables import to_table
from apiserver.watch_cache import WatcherTooSlowError

log = logging.getLogger(__name__)

FUTURE_REVISION_WAIT = 3.0  # seconds a watch from a not-yet-reached resourceVersion waits, as Kubernetes' cache
_SHARED_LINES_KEPT = 512  # encoded events remembered per resource for fan-out to many unfiltered watchers


@dataclass
class WatchRequest:
    handle: ResourceHandle
    namespace: str | None
    selection: Selection
    resource_version: str
    bookmarks: bool
    timeout: float | None
    initial_events_end: bool  # sendInitialEvents=true: mark the end of the synthetic ADDEDs with a BOOKMARK
    table_mode: str | None  # None: plain objects; else includeObject mode of one-row Tables


def parse_watch(handle: ResourceHandle, namespace: str | None, query: Mapping[str, str],
                table_mode: str | None) -> WatchRequest:
    rv = query.get("resourceVersion") or ""
    resource_version_param(rv)  # a 400 unless a non-negative int64
    timeout = query_int(query, "timeoutSeconds")
    send_initial = go_bool(query.get("sendInitialEvents"))
    return WatchRequest(handle=handle, namespace=namespace, selection=Selection.from_query(handle, query),
                        resource_version="0" if send_initial else rv,
                        bookmarks=go_bool(query.get("allowWatchBookmarks")),
                        timeout=float(timeout) if timeout and timeout > 0 else None,
                        initial_events_end=send_initial, table_mode=table_mode)


class WatchStream:
    """One client's watch: produces encoded lines until timeout, error or disconnect (then cancelled)."""

    def __init__(self, state: ServerState, req: WatchRequest) -> None:
        self.state, self.req, self.handle = state, req, req.handle
        self.prefix = req.handle.prefix(req.namespace)
        self.first_table = True
        self.last_revision = 0

    # --- encoding ----------------------------------------------------------------------------------------
    def _line(self, event_type: str, obj: Obj) -> bytes:
        if self.req.table_mode is not None and event_type in ("ADDED", "MODIFIED", "DELETED"):
            obj = to_table(self.handle, [obj], mode=self.req.table_mode, with_columns=self.first_table,
                           list_meta={"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")})
            self.first_table = False
        return orjson.dumps({"type": event_type, "object": obj}) + b"\n"

    def _bookmark(self, annotations: dict[str, str] | None = None) -> bytes:
        meta: Obj = {"resourceVersion": str(self.last_revision)}
        if annotations:
            meta["annotations"] = annotations
        obj = {"kind": self.handle.info.kind, "apiVersion": self.handle.info.api_version, "metadata": meta}
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    def _decode(self, value: bytes, revision: int) -> Obj:
        obj: Obj = orjson.loads(value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
        return with_type(obj, self.handle)

    def convert(self, ev: WatchEvent) -> bytes | None:
        """The line for one storage event as this watcher must see it, or None when it does not concern it."""
        if not ev.key.startswith(self.prefix):
            return None
        selection = self.req.selection
        if selection.everything and self.req.table_mode is None:
            cache_key = (ev.revision, ev.key)
            shared = self.handle.event_lines.get(cache_key)
            if shared is None:
                shared = self._plain_line(ev)
                lines = self.handle.event_lines
                if len(lines) >= _SHARED_LINES_KEPT:
                    for stale in list(lines)[: _SHARED_LINES_KEPT // 2]:
                        del lines[stale]
                lines[cache_key] = shared
            return shared
        if selection.everything:
            return self._plain_line(ev)
        new = self._decode(ev.value, ev.revision) if ev.type == "PUT" and ev.value is not None else None
        old = self._decode(ev.prev_value, ev.revision) if ev.prev_value is not None else None
        new_match, old_match = selection.matches(new), selection.matches(old)
        if new is not None and new_match:
            return self._line("MODIFIED" if old_match else "ADDED", new)
        if old_match:
            return self._line("DELETED", new if new is not None else old)  # type: ignore[arg-type]
        return None

    def _plain_line(self, ev: WatchEvent) -> bytes:
        if ev.type == "DELETE":
            if ev.prev_value is None:
                obj: Obj = {"metadata": {}}
                with_type(obj, self.handle)
            else:
                obj = self._decode(ev.prev_value, ev.revision)
            return self._line("DELETED", obj)
        assert ev.value is not None
        return self._line("ADDED" if ev.prev_value is None else "MODIFIED", self._decode(ev.value, ev.revision))

    # --- the stream --------------------------------------------------------------------------------------
    async def _initial(self) -> tuple[list[bytes], int]:
        page = await self.handle.storage.list(self.prefix)
        lines = []
        for kv in page.items:
            obj = self._decode(kv.value, kv.mod_revision)
            if self.req.selection.everything or self.req.selection.matches(obj):
                lines.append(self._line("ADDED", obj))
        return lines, page.revision

    async def lines(self) -> AsyncIterator[bytes]:
        metrics = self.state.metrics.watches.labels(self.handle.info.group, self.handle.info.plural)
        metrics.inc()
        sub = None
        try:
            cache = await self.handle.watch_cache()
            if self.req.resource_version in ("", "0"):
                initial, after = await self._initial()
            else:
                initial, after = [], int(self.req.resource_version)
                await self._wait_until_reached(after)
            self.last_revision = after
            try:
                sub = cache.subscribe(after_revision=after)
            except RuntimeError:  # the cache was stopped meanwhile: the server is shutting down
                raise ApiError(503, "the API server is shutting down", "ServiceUnavailable") from None
            if self.handle.closing:  # stopping began while we listed: the cache may not end this one
                raise ApiError(503, "the API server is shutting down", "ServiceUnavailable")
            for line in initial:
                yield line
            if self.req.initial_events_end:
                yield self._bookmark({"k8s.io/initial-events-end": "true"})
            async for line in self._follow(sub):
                yield line
        except CompactedError:
            status = expired(f"too old resource version: {self.req.resource_version}").status()
            yield orjson.dumps({"type": "ERROR", "object": status}) + b"\n"
        except WatcherTooSlowError as exc:
            # Kubernetes simply closes an unresponsive watcher; clients (reflectors, kubectl) re-watch from
            # their last resourceVersion on a clean end, while an ERROR event would surface as a failure.
            log.info("closing a watch of %s that fell too far behind: %s", self.handle.info.plural, exc)
        except (StorageError, ApiError) as exc:
            log.warning("watch of %s ended: %s", self.handle.info.plural, exc)
            status = exc.status() if isinstance(exc, ApiError) else status_for(503, str(exc))
            yield orjson.dumps({"type": "ERROR", "object": status}) + b"\n"
        finally:
            if sub is not None:
                sub.close()
            metrics.dec()

    async def _wait_until_reached(self, revision: int) -> None:
        """A watch from a resourceVersion the store has not reached waits a little for it (another server may
        have written it), then fails with Kubernetes' 504 "Too large resource version"."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FUTURE_REVISION_WAIT
        while True:
            current = await self.handle.storage.current_revision()
            if revision <= current:
                return
            if loop.time() >= deadline:
                raise too_large_resource_version(revision, current)
            await asyncio.sleep(min(0.1, FUTURE_REVISION_WAIT))

    async def _follow(self, sub: object) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.req.timeout if self.req.timeout else None
        interval = self.state.config.bookmark_interval if self.req.bookmarks else None
        next_bookmark = loop.time() + interval if interval else None
        events = sub.__aiter__()  # type: ignore[attr-defined]
        while True:
            now = loop.time()
            wake = min((t for t in (deadline, next_bookmark) if t is not None), default=None)
            if deadline is not None and now >= deadline:
                return
            if next_bookmark is not None and interval is not None and now >= next_bookmark:
                next_bookmark = now + interval
                yield self._bookmark()
                continue
            try:
                # The subscription's __anext__ is cancel-safe (it only waits on an Event), so timing out here
                # never loses an event.
                # asyncio.timeout_at, unlike wait_for, needs no extra task per event and watcher.
                if wake is None:
                    ev = await events.__anext__()
                else:
                    async with asyncio.timeout_at(wake):
                        ev = await events.__anext__()
            except TimeoutError:
                continue
            except StopAsyncIteration:
                return
            self.last_revision = ev.revision
            line = self.convert(ev)
            if line is not None:
                yield line
