"""Prometheus metrics of the API server: requests by verb/resource/code with latency, open watches, etcd latency.

Each app owns its own CollectorRegistry so several servers in one process (tests) never collide. Workers of one
server (`--workers`, apiserver/workers.py) share theirs through files instead: see `share_between_processes`.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from apiserver.storage.interface import KeyValue, ListResult, Storage, WatchEvent

_shared_dir: str | None = None


def share_between_processes(directory: str) -> None:
    """Make the metrics this process creates from now on record into files under `directory`, which every
    worker of one server shares, so that each worker's /metrics renders the sum of all workers. Called once,
    in a freshly forked worker, before its app exists (prometheus_client's multiprocess mode)."""
    global _shared_dir
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.MultiProcessValue()
    _shared_dir = directory


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("apiserver_request_total", "Requests by verb, resource and HTTP code.",
                                ["verb", "group", "resource", "subresource", "code"], registry=self.registry)
        self.latency = Histogram("apiserver_request_duration_seconds", "Request latency by verb and resource.",
                                 ["verb", "group", "resource", "subresource"], buckets=_LATENCY_BUCKETS,
                                 registry=self.registry)
        self.watches = Gauge("apiserver_longrunning_requests", "Open watch streams by resource.",
                             ["group", "resource"], registry=self.registry, multiprocess_mode="livesum")
        self.etcd_latency = Histogram("etcd_request_duration_seconds", "Storage call latency by operation.",
                                      ["operation", "type"], buckets=_LATENCY_BUCKETS, registry=self.registry)

        # Labelled children by their label values: `labels()` validates and locks on every call, a measurable
        # share of a small request's CPU; the set of label combinations is small and fixed by the API.
        self._request_children: dict[tuple[str, str, str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, verb: str, group: str, resource: str, subresource: str, code: int,
                        seconds: float) -> None:
        key = (verb, group, resource, subresource, code)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(verb, group, resource, subresource, str(code)),
                        self.latency.labels(verb, group, resource, subresource))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        if _shared_dir is None:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, path=_shared_dir)
        return generate_latest(every_worker)


class InstrumentedStorage:
    """A Storage that records each call's latency in `etcd_request_duration_seconds` (by operation)."""

    def __init__(self, inner: Storage, metrics: Metrics) -> None:
        self._inner = inner
        self._observe = {op: metrics.etcd_latency.labels(op, "all").observe
                         for op in ("get", "list", "create", "update", "delete", "current_revision")}

    async def get(self, key: str) -> KeyValue | None:
        started = time.perf_counter()
        try:
            return await self._inner.get(key)
        finally:
            self._observe["get"](time.perf_counter() - started)

    async def list(self, prefix: str, *, limit: int = 0, start_after: str | None = None,
                   revision: int | None = None) -> ListResult:
        started = time.perf_counter()
        try:
            return await self._inner.list(prefix, limit=limit, start_after=start_after, revision=revision)
        finally:
            self._observe["list"](time.perf_counter() - started)

    async def create(self, key: str, value: bytes) -> int:
        started = time.perf_counter()
        try:
            return await self._inner.create(key, value)
        finally:
            self._observe["create"](time.perf_counter() - started)

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> int:
        started = time.perf_counter()
        try:
            return await self._inner.update(key, value, expected_revision=expected_revision)
        finally:
            self._observe["update"](time.perf_counter() - started)

    async def delete(self, key: str, *, expected_revision: int | None = None) -> tuple[KeyValue, int]:
        started = time.perf_counter()
        try:
            return await self._inner.delete(key, expected_revision=expected_revision)
        finally:
            self._observe["delete"](time.perf_counter() - started)

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        return self._inner.watch(prefix, start_revision=start_revision)

    async def current_revision(self) -> int:
        started = time.perf_counter()
        try:
            return await self._inner.current_revision()
        finally:
            self._observe["current_revision"](time.perf_counter() - started)

    async def compact(self, revision: int) -> None:
        await self._inner.compact(revision)

    async def close(self) -> None:
        await self._inner.close()
