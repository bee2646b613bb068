"""Integration fixtures: the real API server against the session's etcd, with a unique key prefix per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support.apiserver import running_apiserver


@pytest.fixture
def apiserver(etcd_url: str, etcd_prefix: str) -> Iterator[str]:
    with running_apiserver(etcd_url, etcd_prefix, bookmark_interval=0.5) as url:
        yield url


@pytest.fixture
async def api(apiserver: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=apiserver, timeout=10) as client:
        yield client
