"""WatchCache: one storage watch per resource prefix, fanned out to any number of subscribers.

This is the API server's equivalent of the Kubernetes "cacher": however many HTTP watchers a resource has,
etcd sees one watch. The API (the API server codes against exactly this):

    cache = WatchCache(storage, prefix, history_size=10_000, subscriber_buffer=1_000)
    await cache.start()          # one storage.watch(prefix, start_revision=current + 1)
    await cache.stop()           # ends every subscription (their iteration stops after buffered events)
    cache.revision -> int        # newest revision the cache has seen (>= the store revision at start)
    sub = cache.subscribe(after_revision=N)   # events with revision > N, in order, no gap, no duplicate
    async for ev in sub: ...     # ev is a storage WatchEvent
    sub.close()                  # or: async with cache.subscribe(...) as sub

Errors raised by a subscription's iteration:
    CompactedError        N is older than etcd's history (raised on the first iteration), or the cache had to
                          restart because its own watch hit a compaction (clients must relist: HTTP 410)
    WatcherTooSlowError   the subscriber fell more than `subscriber_buffer` events behind and was cut off
                          (clients re-watch from their last revision)

How a subscription is served without gap or duplicate:
  * The cache keeps the last `history_size` events. `history_floor` is the revision such that every event
    with a greater revision is in the history (or still to come live).
  * N >= history_floor: the history after N is copied into the subscription's buffer and the subscription
    is registered for live events in the same synchronous step, so no event can slip in between.
  * N < history_floor: a short-lived catch-up task copies a direct `storage.watch(prefix, start_revision=N+1)`
    into the subscription's buffer (with backpressure) until that watch delivers an event newer than the
    cache's floor; it then drops the direct watch and attaches to the cache with "after = last revision
    copied": the direct watch proved nothing exists between that revision and the floor, the cache holds
    everything after the floor, and the revision filter drops what the direct watch already delivered.
    A compacted N makes the direct watch fail at once, and the subscription raises CompactedError.
  * Dispatching one event appends it to each live subscriber's deque and sets its asyncio.Event: no task per
    subscriber in the cache, and a full deque cuts that subscriber off instead of blocking the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType

from apiserver.storage.interface import CompactedError, Storage, StorageError, WatchEvent

log = logging.getLogger(__name__)

# After the storage watch gives up (etcd away for longer than its own reconnect window) the cache keeps
# re-watching from its last revision: a control plane must recover when etcd does.
REWATCH_BACKOFF_START = 0.1
REWATCH_BACKOFF_CAP = 5.0


@contextlib.asynccontextmanager
async def closing(events: AsyncIterator[WatchEvent]) -> AsyncIterator[AsyncIterator[WatchEvent]]:
    """Close a storage watch deterministically (`async for` does not), so its etcd watcher is cancelled now."""
    try:
        yield events
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


class WatcherTooSlowError(Exception):
    """The subscriber did not keep up and was cut off; re-subscribe from the last revision received."""


class Subscription:
    """An ordered stream of WatchEvents with revision > after_revision. Iterate it; close it when done."""

    def __init__(self, cache: WatchCache, after_revision: int, buffer_limit: int) -> None:
        self._cache = cache
        self._after = after_revision  # live events at or below this revision are not delivered
        self._last_delivered = after_revision
        self._buffer: deque[WatchEvent] = deque()
        self._buffer_limit = buffer_limit
        self._wakeup = asyncio.Event()  # set when the buffer gains an event or the stream ends
        self._drained = asyncio.Event()  # set when the consumer made room (only the catch-up pump waits)
        self._error: BaseException | None = None
        self._closed = False

    @property
    def last_revision(self) -> int:
        """Revision of the last event handed to the consumer (after_revision before the first one)."""
        return self._last_delivered

    # -- consumer side -----------------------------------------------------------------------------------

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> WatchEvent:
        while True:
            if self._buffer:
                event = self._buffer.popleft()
                self._last_delivered = event.revision
                self._drained.set()
                return event
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    def close(self) -> None:
        """Stop receiving events. Safe to call more than once and from any task."""
        if self._closed:
            return
        self._end()
        self._buffer.clear()
        self._cache._forget(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    # -- catch-up from storage for revisions older than the cache's history -------------------------------

    async def _catch_up(self, storage: Storage, prefix: str) -> None:
        """Copy a direct storage watch into the buffer until the cache's history covers the rest."""
        try:
            async with closing(storage.watch(prefix, start_revision=self._after + 1)) as direct:
                await self._copy_until_covered(direct)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # CompactedError, StorageUnavailableError: the consumer must see them
            self._fail(error)
            self._cache._forget(self)

    async def _copy_until_covered(self, direct: AsyncIterator[WatchEvent]) -> None:
        last_copied = self._after
        async for event in direct:
            if self._closed:
                return
            if event.revision > self._cache.history_floor:
                # Nothing exists between `last_copied` and this event, and the cache holds everything
                # after its floor: attaching "after last_copied" continues without gap or duplicate.
                self._cache._attach(self, after_revision=last_copied)
                return
            while len(self._buffer) >= self._buffer_limit and not self._closed:
                # Backpressure instead of a cut-off: this watch is private, etcd/gRPC can hold the rest.
                self._drained.clear()
                await self._drained.wait()
            self._buffer.append(event)
            last_copied = event.revision
            self._wakeup.set()

    # -- cache side (synchronous: called while dispatching) -----------------------------------------------

    def _load(self, events: list[WatchEvent], after_revision: int) -> None:
        self._after = after_revision
        self._buffer.extend(events)
        # A backlog handed over at subscribe time is not "falling behind"; only live events count.
        self._buffer_limit += len(events)
        if events:
            self._wakeup.set()

    def _push(self, event: WatchEvent) -> bool:
        """Queue a live event; False when the subscriber is too slow and must be dropped."""
        if event.revision <= self._after:
            return True
        if len(self._buffer) >= self._buffer_limit:
            self._fail(WatcherTooSlowError(
                f"subscriber fell more than {self._buffer_limit} events behind at revision {event.revision}"))
            return False
        self._buffer.append(event)
        self._wakeup.set()
        return True

    def _fail(self, error: BaseException) -> None:
        self._buffer.clear()  # the consumer must re-subscribe anyway; free the memory now
        self._error = error
        self._wakeup.set()
        self._drained.set()

    def _end(self) -> None:
        self._closed = True
        self._wakeup.set()
        self._drained.set()


class WatchCache:
    """One storage watch on `prefix`, shared by every subscription. See the module docstring."""

    def __init__(self, storage: Storage, prefix: str, *, history_size: int = 10_000,
                 subscriber_buffer: int = 1_000) -> None:
        if history_size < 1 or subscriber_buffer < 1:
            raise ValueError("history_size and subscriber_buffer must be positive")
        self._storage = storage
        self._prefix = prefix
        self._history: deque[WatchEvent] = deque()
        self._history_size = history_size
        self._subscriber_buffer = subscriber_buffer
        self._revision = 0
        self._floor = 0
        self._live: dict[Subscription, None] = {}  # insertion-ordered set
        self._catching_up: dict[Subscription, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def revision(self) -> int:
        """Newest revision the cache has seen: its start revision or the latest event's."""
        return self._revision

    @property
    def history_floor(self) -> int:
        """Every event with a revision greater than this is in the history (or will arrive live)."""
        return self._floor

    @property
    def subscriber_count(self) -> int:
        return len(self._live) + len(self._catching_up)

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("WatchCache already started")
        self._reset(await self._storage.current_revision())
        self._task = asyncio.create_task(self._run(), name=f"watch-cache {self._prefix}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        pumps = list(self._catching_up.values())
        for pending in (task, *pumps):
            if pending is not None:
                pending.cancel()
        await asyncio.gather(*(t for t in (task, *pumps) if t is not None), return_exceptions=True)
        for sub in [*self._live, *self._catching_up]:
            sub._end()
        self._live.clear()
        self._catching_up.clear()

    def subscribe(self, after_revision: int) -> Subscription:
        """Events with revision > after_revision, in order; from history, or etcd when older than it."""
        if self._task is None:
            raise RuntimeError("WatchCache is not running: call `await cache.start()` first")
        sub = Subscription(self, after_revision, self._subscriber_buffer)
        if after_revision >= self._floor:
            self._attach(sub, after_revision=after_revision)
        else:
            self._catching_up[sub] = asyncio.create_task(
                sub._catch_up(self._storage, self._prefix), name=f"watch-cache catch-up {self._prefix}")
        return sub

    # -- the single storage watch -------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = REWATCH_BACKOFF_START
        while True:
            try:
                async with closing(self._storage.watch(self._prefix, start_revision=self._revision + 1)) as events:
                    await self._dispatch_all(events)
            except CompactedError as error:
                # Events between our revision and the compaction are gone: nobody can be served gaplessly.
                log.warning("watch cache %s: %s; restarting from the current revision", self._prefix, error)
                self._fail_all(error)
                try:
                    self._reset(await self._storage.current_revision())
                except StorageError as unavailable:
                    log.warning("watch cache %s: cannot read revision: %s", self._prefix, unavailable)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, REWATCH_BACKOFF_CAP)
            except StorageError as error:
                log.warning("watch cache %s: storage watch failed (%s); re-watching from %d",
                            self._prefix, error, self._revision + 1)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, REWATCH_BACKOFF_CAP)

    async def _dispatch_all(self, events: AsyncIterator[WatchEvent]) -> None:
        async for event in events:
            self._dispatch(event)
            # etcd may hand over hundreds of events at once (a watch replaying history): let the woken
            # subscribers drain between events, so one burst does not cut off readers that keep up.
            await asyncio.sleep(0)

    def _dispatch(self, event: WatchEvent) -> None:
        if len(self._history) >= self._history_size:
            self._floor = self._history.popleft().revision
        self._history.append(event)
        if event.revision > self._revision:
            self._revision = event.revision
        too_slow = [sub for sub in self._live if not sub._push(event)]
        for sub in too_slow:
            del self._live[sub]

    def _reset(self, revision: int) -> None:
        self._history.clear()
        self._revision = self._floor = revision

    def _fail_all(self, error: BaseException) -> None:
        for sub in [*self._live, *self._catching_up]:
            sub._fail(error)
            self._forget(sub)

    # -- bookkeeping called by Subscription ---------------------------------------------------------------

    def _attach(self, sub: Subscription, *, after_revision: int) -> None:
        """Hand `sub` the history after `after_revision` and register it for live events, atomically."""
        backlog: list[WatchEvent] = []
        for event in reversed(self._history):
            if event.revision <= after_revision:
                break
            backlog.append(event)
        backlog.reverse()
        sub._load(backlog, after_revision)
        self._catching_up.pop(sub, None)  # its catch-up task returns right after attaching
        self._live[sub] = None

    def _forget(self, sub: Subscription) -> None:
        self._live.pop(sub, None)
        pump = self._catching_up.pop(sub, None)
        if pump is not None and pump is not asyncio.current_task():
            pump.cancel()
