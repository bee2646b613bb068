"""Kubernetes timestamps (RFC 3339, second or microsecond precision) <-> unix seconds.

Controllers take a `Clock` (a zero-argument callable returning unix seconds) so tests can move time without
sleeping; this module converts what they read from and write to objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]

system_clock: Clock = time.time


def format_time(seconds: float) -> str:
    """metav1.Time: whole seconds, 'Z' suffix (what the API server and kubectl print)."""
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(seconds: float) -> str:
    """metav1.MicroTime: microseconds, used by Leases and Events."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> float | None:
    """Parse metav1.Time / MicroTime; None (or garbage) when absent."""
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
