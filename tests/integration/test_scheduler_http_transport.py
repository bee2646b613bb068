"""KeepAliveTransport (the scheduler's write path) against the real API server: requests, errors, reuse."""

from __future__ import annotations

import pytest

from aiokube.api.errors import ApiError
from aiokube.client import ApiClient
from scheduler.http_transport import KeepAliveTransport
from tests.unit.scheduler_fixtures import make_node, make_pod

pytestmark = pytest.mark.etcd


async def test_round_trips_and_reuses_connections(apiserver: str) -> None:
    transport = KeepAliveTransport()
    async with ApiClient(server=apiserver, transport=transport) as client:
        await client.create("nodes", make_node("n1"))
        created = await client.create("pods", make_pod("p1"))
        assert created["metadata"]["name"] == "p1"
        await client.create_subresource("pods", "p1", "binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p1"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}, namespace="default")
        patched = await client.patch("pods", "p1", {"status": {"conditions": [
            {"type": "PodScheduled", "status": "True"}]}}, namespace="default", patch_type="strategic",
            subresource="status")
        assert patched["spec"]["nodeName"] == "n1"
        with pytest.raises(ApiError) as info:
            await client.get("pods", "missing", namespace="default")
        assert info.value.code == 404
        for _ in range(20):
            await client.get("pods", "p1", namespace="default")
        idle = [conn for conns in transport._idle.values() for conn in conns]
        assert len(idle) == 1  # sequential requests share one kept-alive connection
