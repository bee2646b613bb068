"""An informer: a reflector that keeps a `Store` in step with the API server, plus event handlers.

The reflector lists (in pages of 500), then watches from the list's resourceVersion with bookmarks, and on
every stream end watches again from the last resourceVersion it saw (a bookmark counts). When that version is
too old (410 Expired) it relists and hands the difference between the cache and the fresh list to the
handlers as adds, updates and deletes, so no change is lost. Other failures back off and retry.
`resync_period` periodically replays the cache to the handlers as updates (a safety net for controllers that
missed acting on something), without talking to the server.

Handlers are plain synchronous callables, called in event order in the informer's task; an exception in one
is logged and does not stop the informer or the other handlers.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.client.api_client import ApiClient
from aiokube.client.backoff import ExponentialBackoff
from aiokube.client.clock import REAL_CLOCK, Clock
from aiokube.client.keys import object_key
from aiokube.client.store import IndexFunc, Store

log = logging.getLogger(__name__)

# client-go's reflector backoff: start at 800 ms so a briefly unavailable API server is retried almost at once,
# double on every consecutive failure, and stop at 30 s so a long outage is not hammered but recovery is
# noticed within half a minute.
BACKOFF_INITIAL = 0.8
BACKOFF_CAP = 30.0
LIST_PAGE_SIZE = 500
# Ask the server to end each watch after 5-10 minutes (client-go's minWatchTimeout with jitter) so
# connections are refreshed and stuck watches cannot last forever.
WATCH_TIMEOUT_MIN = 300
# A watch that the server closes within a second without delivering anything is treated as a failure (as
# client-go's "very short watch"), so a misbehaving server is not hammered by immediate re-watches.
SHORT_WATCH_SECONDS = 1.0

AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]


@dataclass
class _Handlers:
    on_add: AddHandler | None
    on_update: UpdateHandler | None
    on_delete: DeleteHandler | None


def _resource_version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Informer:
    def __init__(self, client: ApiClient, resource: str, namespace: str | None = None, *,
                 label_selector: str | None = None, field_selector: str | None = None,
                 resync_period: float | None = None, clock: Clock = REAL_CLOCK,
                 backoff: ExponentialBackoff | None = None,
                 watch_timeout_seconds: int | None = None) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.store = Store()
        self.last_resource_version: str | None = None
        self._clock = clock
        self._backoff = backoff if backoff is not None else ExponentialBackoff(BACKOFF_INITIAL, BACKOFF_CAP)
        self._watch_timeout = watch_timeout_seconds
        self._handlers: list[_Handlers] = []
        self._synced = asyncio.Event()

    # -- public surface -----------------------------------------------------------------------------------

    def add_handler(self, on_add: AddHandler | None = None, on_update: UpdateHandler | None = None,
                    on_delete: DeleteHandler | None = None) -> None:
        """Register handlers; a handler added after objects are cached first sees them all as adds."""
        handlers = _Handlers(on_add, on_update, on_delete)
        self._handlers.append(handlers)
        if handlers.on_add:
            for obj in self.store.list():
                self._call(handlers.on_add, obj)

    def add_index(self, name: str, func: IndexFunc) -> None:
        self.store.add_index(name, func)

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    async def run(self) -> None:
        """List and watch until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            if self.resync_period:
                tasks.create_task(self._resync_loop(self.resync_period))
            await self._reflect()

    # -- the reflector --------------------------------------------------------------------------------------

    async def _reflect(self) -> None:
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list_and_replace()
                    need_list = False
                    self._backoff.reset()
                started = self._clock.monotonic()
                if await self._watch_once():
                    self._backoff.reset()
                    continue
                if self._clock.monotonic() - started >= SHORT_WATCH_SECONDS:
                    continue
                log.warning("%s: very short watch: closed within %.0fs without events", self.resource,
                            SHORT_WATCH_SECONDS)
            except ApiError as exc:
                if exc.code == 410:
                    log.info("%s: resourceVersion %s expired, relisting", self.resource,
                             self.last_resource_version)
                    need_list = True
                    continue
                log.warning("%s: list/watch failed: %s %s", self.resource, exc.code, exc.message)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("%s: list/watch failed: %r", self.resource, exc)
            await self._clock.sleep(self._backoff.next_delay())

    async def _list_and_replace(self) -> None:
        items: list[Obj] = []
        continue_token: str | None = None
        while True:
            page = await self.client.list(self.resource, self.namespace, label_selector=self.label_selector,
                                          field_selector=self.field_selector, limit=LIST_PAGE_SIZE,
                                          continue_=continue_token)
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            continue_token = metadata.get("continue") or None
            if not continue_token:
                break
        self._replace(items)
        self.last_resource_version = str(metadata.get("resourceVersion") or "") or None
        self._synced.set()

    def _replace(self, items: list[Obj]) -> None:
        """Make the store equal to a fresh list, telling handlers what changed since the last one."""
        fresh_keys = set()
        for obj in items:
            fresh_keys.add(object_key(obj))
            self._apply_upsert(obj, only_if_changed=True)
        for key in [k for k in self.store.keys() if k not in fresh_keys]:
            old = self.store.delete(key)
            if old is not None:
                self._dispatch_delete(old)

    async def _watch_once(self) -> bool:
        """Watch from the last resourceVersion until the stream ends; True when events arrived."""
        timeout = self._watch_timeout or int(WATCH_TIMEOUT_MIN * (1 + random.random()))
        received = False
        async for event in self.client.watch(self.resource, self.namespace,
                                             resource_version=self.last_resource_version,
                                             label_selector=self.label_selector,
                                             field_selector=self.field_selector,
                                             allow_bookmarks=True, timeout_seconds=timeout):
            received = True
            self._handle_event(event)
        return received

    def _handle_event(self, event: Obj) -> None:
        kind = event.get("type")
        obj: Obj = event.get("object") or {}
        if kind in ("ADDED", "MODIFIED"):
            self._apply_upsert(obj, only_if_changed=False)
        elif kind == "DELETED":
            self.store.delete(object_key(obj))
            self._dispatch_delete(obj)
        elif kind != "BOOKMARK":
            log.warning("%s: ignoring watch event of type %r", self.resource, kind)
            return
        rv = _resource_version(obj)
        if rv:
            self.last_resource_version = rv

    def _apply_upsert(self, obj: Obj, *, only_if_changed: bool) -> None:
        old = self.store.get(object_key(obj))
        if only_if_changed and old is not None and _resource_version(old) == _resource_version(obj):
            return
        self.store.upsert(obj)
        if old is None:
            for h in self._handlers:
                if h.on_add:
                    self._call(h.on_add, obj)
        else:
            for h in self._handlers:
                if h.on_update:
                    self._call(h.on_update, old, obj)

    def _dispatch_delete(self, last_known: Obj) -> None:
        for h in self._handlers:
            if h.on_delete:
                self._call(h.on_delete, last_known)

    async def _resync_loop(self, period: float) -> None:
        await self._synced.wait()
        while True:
            await self._clock.sleep(period)
            self.resync()

    def resync(self) -> None:
        """Replay every cached object to the handlers as an update of itself."""
        for obj in self.store.list():
            for h in self._handlers:
                if h.on_update:
                    self._call(h.on_update, obj, obj)

    def _call(self, handler: Callable[..., None], *args: Obj) -> None:
        try:
            handler(*args)
        except Exception:
            log.exception("%s: event handler %r failed", self.resource, handler)
