"""The proxy's sync loop against an in-memory API: informer changes become one rule write after the debounce,
bursts collapse, a failed write is retried whole, and node routes follow Nodes. nft itself is replaced by a
recorder here (the kernel side is covered by test_proxy_rules and the e2e test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from aiokube.client import ApiClient
from aiokube.client.fake_api import FakeApiServer
from proxy.iptables import service_chain
from proxy.iptables_applier import IptablesApplier
from proxy.model import service_ports
from proxy.nftables import Ruleset
from proxy.proxier import Proxier
from tests.unit.test_proxy_iptables import RestoreRecorder


class RecordingNft:
    def __init__(self) -> None:
        self.writes: list[tuple[Ruleset, bool]] = []
        self.fail = 0
        self.written = asyncio.Event()

    async def apply(self, ruleset: Ruleset, *, full: bool = False) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("nft failed")
        self.writes.append((ruleset, full))
        self.written.set()


class RecordingRoutes:
    def __init__(self) -> None:
        self.wanted: list[dict[str, str]] = []

    async def sync(self, wanted: dict[str, str]) -> None:
        self.wanted.append(wanted)


@pytest.fixture
async def client() -> AsyncIterator[ApiClient]:
    async with ApiClient("http://fake", transport=FakeApiServer().transport()) as api_client:
        yield api_client


async def wait_for_writes(nft: RecordingNft, count: int) -> None:
    async with asyncio.timeout(5):
        while len(nft.writes) < count:
            nft.written.clear()
            await nft.written.wait()


def service_ips(ruleset: Ruleset) -> list[str]:
    return ruleset.map_elements["service-ips"]


async def test_changes_are_batched_and_applied(client: ApiClient) -> None:
    nft, routes = RecordingNft(), RecordingRoutes()
    proxier = Proxier(client, "n1", nft, routes, debounce=0.05)  # type: ignore[arg-type]
    task = asyncio.create_task(proxier.run())
    try:
        await wait_for_writes(nft, 1)
        assert service_ips(nft.writes[0][0]) == [] and routes.wanted == [{}]
        await client.create("services", {"metadata": {"name": "web", "namespace": "default"},
                                          "spec": {"clusterIP": "10.96.0.5", "ports": [{"name": "http", "port": 80}]}})
        for i in range(5):  # a burst of slice writes
            await client.create("endpointslices", {
                "metadata": {"name": f"web-{i}", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": [f"10.244.1.{i + 1}"], "conditions": {"ready": True}}]})
        await client.create("nodes", {"metadata": {"name": "n2"}, "spec": {"podCIDR": "10.244.2.0/24"},
                                      "status": {"addresses": [{"type": "InternalIP", "address": "172.30.0.12"}]}})
        await asyncio.sleep(0.3)
        last = nft.writes[-1][0]
        assert len(nft.writes) <= 4  # 7 events, far fewer writes
        assert len(service_ips(last)) == 1 and "mod 5" in " ".join(
            rule for chain in last.chains.values() for rule in chain)
        assert routes.wanted[-1] == {"10.244.2.0/24": "172.30.0.12"}

        nft.fail = 1  # a failed write is retried (NftApplier then rewrites the table whole)
        await client.delete("services", "web", namespace="default")
        writes = len(nft.writes)
        await wait_for_writes(nft, writes + 1)
        assert service_ips(nft.writes[-1][0]) == []
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_iptables_fallback_sends_only_the_changed_service_after_the_first_sync(client: ApiClient) -> None:
    recorder = RestoreRecorder()
    proxier = Proxier(client, "n1", IptablesApplier(recorder), None, debounce=0.02)
    for name, ip in (("web", "10.96.0.5"), ("other", "10.96.0.6")):
        await client.create("services", {"metadata": {"name": name, "namespace": "default"},
                                          "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]}})
        await client.create("endpointslices", {
            "metadata": {"name": f"{name}-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.244.1.{i}"], "conditions": {"ready": True}} for i in (1, 2)]})
    task = asyncio.create_task(proxier.run())
    try:
        async with asyncio.timeout(5):
            await proxier.synced.wait()
        assert "10.96.0.5" in recorder.scripts[0] and "10.96.0.6" in recorder.scripts[0]  # first: everything
        web = await client.get("endpointslices", "web-1", namespace="default")
        web["endpoints"][1]["conditions"]["ready"] = False
        proxier.synced.clear()  # set again by every later sync
        await client.update("endpointslices", web)
        async with asyncio.timeout(5):
            while len(recorder.scripts) < 2:
                await proxier.synced.wait()
                proxier.synced.clear()
        other = service_chain(service_ports(
            [await client.get("services", "other", namespace="default")],
            [await client.get("endpointslices", "other-1", namespace="default")])[0])
        assert other not in recorder.scripts[1] and "AIOKUBE-SVC-" in recorder.scripts[1]
        assert "-X AIOKUBE-SEP-" in recorder.scripts[1]  # the not-ready endpoint's chain goes
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_deleted_nodes_route_is_no_longer_wanted(client: ApiClient) -> None:
    nft, routes = RecordingNft(), RecordingRoutes()
    for name, index in (("n1", 1), ("n2", 2), ("n3", 3)):
        await client.create("nodes", {"metadata": {"name": name}, "spec": {"podCIDR": f"10.244.{index}.0/24"},
                                      "status": {"addresses": [{"type": "InternalIP",
                                                                "address": f"172.30.0.1{index}"}]}})
    proxier = Proxier(client, "n1", nft, routes, debounce=0.02)  # type: ignore[arg-type]
    task = asyncio.create_task(proxier.run())
    try:
        async with asyncio.timeout(5):
            await proxier.synced.wait()
        assert routes.wanted[-1] == {"10.244.2.0/24": "172.30.0.12", "10.244.3.0/24": "172.30.0.13"}
        await client.delete("nodes", "n2")
        async with asyncio.timeout(5):  # the deletion alone triggers a sync that drops n2's route
            while routes.wanted[-1] != {"10.244.3.0/24": "172.30.0.13"}:
                proxier.synced.clear()
                await proxier.synced.wait()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
