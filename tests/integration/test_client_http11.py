"""ApiClient's lean HTTP/1.1 path (aiokube.client.http11) against the real API server: verbs, errors, reuse."""

from __future__ import annotations

import asyncio

import pytest

from aiokube.api.errors import ApiError
from aiokube.client import ApiClient
from tests.unit.scheduler_fixtures import make_node, make_pod

pytestmark = pytest.mark.etcd


async def test_typed_verbs_round_trip_over_one_kept_alive_connection(apiserver: str) -> None:
    async with ApiClient(server=apiserver) as client:
        assert client._lean is not None  # plain http:// and no injected transport: the lean path is used
        await client.create("nodes", make_node("n1"))
        created = await client.create("pods", make_pod("p1"))
        assert created["metadata"]["name"] == "p1"
        await client.create_subresource("pods", "p1", "binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p1"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}, namespace="default")
        patched = await client.patch("pods", "p1", {"metadata": {"labels": {"x": "y"}}}, namespace="default",
                                     patch_type="strategic")
        assert patched["spec"]["nodeName"] == "n1" and patched["metadata"]["labels"]["x"] == "y"
        listed = await client.list("pods", namespace="default", label_selector="x=y")
        assert [p["metadata"]["name"] for p in listed["items"]] == ["p1"]
        with pytest.raises(ApiError) as info:
            await client.get("pods", "missing", namespace="default")
        assert info.value.code == 404 and info.value.reason == "NotFound"
        with pytest.raises(ApiError) as conflict:
            await client.create("pods", make_pod("p1"))
        assert conflict.value.code == 409
        for _ in range(20):
            await client.get("pods", "p1", namespace="default")
        assert client._lean.idle_connections == 1  # sequential requests share one connection
        deleted = await client.delete("pods", "p1", namespace="default", grace_period_seconds=0)
        assert deleted["metadata"]["name"] == "p1"


async def test_concurrent_writes_open_bounded_connections(apiserver: str) -> None:
    async with ApiClient(server=apiserver) as client:
        await asyncio.gather(*(client.create("pods", make_pod(f"p{i}")) for i in range(50)))
        assert len((await client.list("pods", namespace="default"))["items"]) == 50
        assert client._lean is not None and 1 <= client._lean.idle_connections <= 32
