"""Helpers for the per-kind strategy tests: a resource's strategy, an object run through create-time
defaulting and preparation, and validation causes keyed by field."""

from __future__ import annotations

from typing import Any

from aiokube.api.resources import lookup
from apiserver.strategies.base import Strategy
from apiserver.strategies.registry import strategy_for
from apiserver.strategies.tableutil import parse_time

NOW = parse_time("2024-01-01T12:00:00Z")  # the fixed "now" the strategies' tables and ages are computed at


def strategy(resource: str) -> Strategy:
    return strategy_for(lookup(resource))


def create(resource: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` as the API server stores it on create: defaulted, then prepared (in place, and returned)."""
    s = strategy(resource)
    s.default(body)
    s.prepare_for_create(body)
    return body


def by_field(causes: list[dict[str, str]]) -> dict[str, str]:
    return {c["field"]: c["message"] for c in causes}
