"""Kubernetes timestamp formats.

metav1.Time is RFC3339 with whole seconds ("2026-11-23T09:12:10Z"); metav1.MicroTime (Lease renewTime,
Event eventTime) carries six fractional digits ("2026-11-23T09:12:10.123456Z").
"""

from __future__ import annotations

import datetime as dt


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> dt.datetime:
    """Parse metav1.Time or MicroTime (any RFC3339 offset) into an aware UTC datetime."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)
