"""The controller runtime: a work queue of keys, N workers, and a `Reconciler` that makes one key right.

The contract (as in controller-runtime): `reconcile(key)` gets only "namespace/name", reads current state
(usually from informer caches) and returns a `Result`. Each outcome means one thing:
- `Result()`                      done; the key's failure history is forgotten;
- `Result(requeue=True)`          try again after the rate limiter's delay;
- `Result(requeue_after=seconds)` try again after exactly that delay;
- raising an exception            logged, counted, retried with the rate limiter's backoff;
- raising `TerminalError`         logged, counted, not retried (only a new event brings the key back).
Workers start only after every informer has synced, and one key is never reconciled by two workers at once
(the work queue's processing set guarantees it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokube.client.informer import Informer
from aiokube.client.metrics import (
    RECONCILE_DURATION_SECONDS,
    RECONCILE_ERRORS_TOTAL,
    RECONCILE_TOTAL,
    TERMINAL_RECONCILE_ERRORS_TOTAL,
)
from aiokube.client.workqueue import WorkQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    requeue: bool = False
    requeue_after: float | None = None


class TerminalError(Exception):
    """Raised by a reconciler for a failure retrying cannot fix (e.g. an invalid spec)."""


class Reconciler(Protocol):
    async def reconcile(self, key: str) -> Result: ...


class Controller:
    def __init__(self, name: str, reconciler: Reconciler, *, workers: int = 1,
                 informers: Sequence[Informer] = (), queue: WorkQueue | None = None) -> None:
        self.name = name
        self.reconciler = reconciler
        self.workers = workers
        self.informers = list(informers)
        self.queue = queue if queue is not None else WorkQueue(name)

    async def run(self) -> None:
        """Wait for the informers to sync, then run the workers until cancelled."""
        try:
            await asyncio.gather(*(inf.wait_synced() for inf in self.informers))
            log.info("controller %s: caches synced, starting %d workers", self.name, self.workers)
            async with asyncio.TaskGroup() as tasks:
                for _ in range(self.workers):
                    tasks.create_task(self._worker())
        finally:
            self.queue.shutdown()

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            if key is None:
                return
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: str) -> None:
        """Reconcile one key and turn the outcome into queue actions and metrics."""
        started = time.perf_counter()
        outcome = "success"
        try:
            result = await self.reconciler.reconcile(key)
        except asyncio.CancelledError:
            raise
        except TerminalError as exc:
            outcome = "terminal_error"
            RECONCILE_ERRORS_TOTAL.labels(self.name).inc()
            TERMINAL_RECONCILE_ERRORS_TOTAL.labels(self.name).inc()
            log.error("controller %s: %s failed terminally, not retrying: %s", self.name, key, exc)
            self.queue.forget(key)
        except Exception:
            outcome = "error"
            RECONCILE_ERRORS_TOTAL.labels(self.name).inc()
            log.exception("controller %s: reconciling %s failed (retry %d)", self.name, key,
                          self.queue.num_requeues(key) + 1)
            self.queue.add_rate_limited(key)
        else:
            if result.requeue_after is not None and result.requeue_after > 0:
                outcome = "requeue_after"
                self.queue.forget(key)
                self.queue.add_after(key, result.requeue_after)
            elif result.requeue:
                outcome = "requeue"
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
        finally:
            RECONCILE_DURATION_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        RECONCILE_TOTAL.labels(self.name, outcome).inc()
