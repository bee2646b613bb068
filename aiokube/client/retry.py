"""When and how long the REST client waits before trying a request again.

Which failures are safe to retry depends on the verb:
- 429 Too Many Requests: the server refused the request without acting on it, so every verb is retried,
  after the server's `Retry-After` when it gives one.
- 5xx and broken connections: only for reads (GET, list, establishing a watch). A write may already have
  been applied when the server failed or the connection broke, and repeating it could apply it twice.
- A connection that could not be opened at all (refused, DNS, connect timeout): every verb, because nothing
  was sent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    # Five attempts spread over ~3 s ride out an API server restart or a leader change of etcd without
    # hiding a real outage from the caller for long.
    max_attempts: int = 5
    initial_delay: float = 0.2
    max_delay: float = 5.0
    # Retry-After from an overloaded server is honoured, but never beyond this, so a caller is not parked
    # for minutes by one header.
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt number `attempt + 1` (attempt counts from 1)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = min(self.initial_delay * (2 ** (attempt - 1)), self.max_delay)
        # Jitter keeps many clients that failed together from retrying in lockstep.
        return base * (0.5 + random.random() / 2)


def retryable_status(method: str, status_code: int) -> bool:
    if status_code == 429:
        return True
    return method in IDEMPOTENT_METHODS and status_code >= 500


def retryable_exception(method: str, exc: Exception) -> bool:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return True  # nothing reached the server
    return method in IDEMPOTENT_METHODS and isinstance(exc, httpx.TransportError)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # the HTTP-date form is not used by the Kubernetes API server
