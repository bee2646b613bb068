"""Integration fixtures: the real API server (with an ApiClient and a fresh namespace), or an EtcdStorage client,
against the session's etcd (each test uses its own key prefix)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from aiokube.client import ApiClient
from apiserver.storage.etcd import EtcdStorage
from tests.support.apiserver import running_apiserver


@pytest.fixture
def apiserver(etcd_url: str, etcd_prefix: str) -> Iterator[str]:
    with running_apiserver(etcd_url, etcd_prefix, bookmark_interval=0.5) as url:
        yield url


@pytest.fixture
async def api(apiserver: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=apiserver, timeout=10) as client:
        yield client


@pytest.fixture
async def client(apiserver: str) -> AsyncIterator[ApiClient]:
    async with ApiClient(apiserver) as api:
        yield api


@pytest.fixture
async def namespace(client: ApiClient, request: pytest.FixtureRequest) -> str:
    """A new namespace named after the test module (test_controllers_gc -> controllers-gc-<random>)."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    name = f"{module}-{uuid.uuid4().hex[:8]}"
    await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture
async def storage(etcd_url: str) -> AsyncIterator[EtcdStorage]:
    store = EtcdStorage([etcd_url])
    await store.connect()
    try:
        yield store
    finally:
        await store.close()
