"""Prometheus metrics of the API server: requests by verb/resource/code with latency, open watches, etcd latency.

Each app owns its own CollectorRegistry so several servers in one process (tests) never collide.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
                             ["group", "resource"], registry=self.registry)
        self.etcd_latency = Histogram("etcd_request_duration_seconds", "Storage call latency by operation.",
                                      ["operation", "type"], buckets=_LATENCY_BUCKETS, registry=self.registry)

    def observe_request(self, verb: str, group: str, resource: str, subresource: str, code: int,
                        seconds: float) -> None:
        self.requests.labels(verb, group, resource, subresource, str(code)).inc()
        self.latency.labels(verb, group, resource, subresource).observe(seconds)

    @asynccontextmanager
    async def etcd_call(self, operation: str, resource: str) -> AsyncIterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.etcd_latency.labels(operation, resource).observe(time.perf_counter() - start)

    def render(self) -> bytes:
        return generate_latest(self.registry)
