"""ClusterIP and NodePort allocation against a real etcd: uniqueness under concurrency (two allocators on one
etcd, as two API servers), requested values, Kubernetes' error messages, type changes, rollback and release."""

from __future__ import annotations

import asyncio
import copy
import random

import pytest

from aiokube.api.errors import ApiError
from apiserver.allocators import NodePortAllocator, ServiceAllocators, ServiceIPAllocator, kubernetes_service_ip
from apiserver.storage.etcd import EtcdStorage

pytestmark = pytest.mark.etcd


def service(name: str, kind: str = "ClusterIP", **spec: object) -> dict:
    ports = spec.pop("ports", [{"name": "http", "port": 80, "protocol": "TCP"}])
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {"type": kind, "ports": ports, **spec}}


async def test_requested_ip_is_reserved_once_with_kubernetes_message(storage: EtcdStorage, etcd_prefix: str) -> None:
    ips = ServiceIPAllocator(storage, etcd_prefix)
    assert kubernetes_service_ip() == "10.96.0.1"
    assert await ips.allocate("default/kubernetes", "10.96.0.1") == "10.96.0.1"
    assert await ips.allocate("default/kubernetes", "10.96.0.1") == "10.96.0.1"  # same owner: idempotent
    with pytest.raises(ApiError) as taken:
        await ips.allocate("default/other", "10.96.0.1")
    assert taken.value.code == 422
    assert taken.value.message == ('Service "other" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.1"}: '
                                   "failed to allocate IP 10.96.0.1: provided IP is already allocated")
    with pytest.raises(ApiError) as outside:
        await ips.allocate("default/other", "192.168.1.1")
    assert outside.value.code == 422
    assert "is not in the valid range. The range of valid IPs is 10.96.0.0/12" in outside.value.message
    kv = await storage.get(f"{etcd_prefix}/ranges/serviceips/10.96.0.1")
    assert kv is not None and b"default/kubernetes" in kv.value


async def test_random_ips_are_unique_across_two_allocators(storage: EtcdStorage, etcd_prefix: str) -> None:
    # A /27 has 30 usable addresses: 30 concurrent allocations from two "API servers" must take each exactly once.
    first = ServiceIPAllocator(storage, etcd_prefix, "10.100.0.0/27", rng=random.Random(1))
    second = ServiceIPAllocator(storage, etcd_prefix, "10.100.0.0/27", rng=random.Random(1))
    results = await asyncio.gather(*(
        (first if i % 2 else second).allocate(f"default/svc-{i}") for i in range(30)))
    assert len(set(results)) == 30
    assert all(first.contains(ip) for ip in results)
    with pytest.raises(ApiError) as full:
        await first.allocate("default/one-too-many")
    assert full.value.code == 500 and "range is full" in full.value.message
    assert await first.release(results[0], "default/not-the-owner") is False
    assert await first.release(results[0]) is True
    assert await second.allocate("default/late") == results[0]


async def test_node_ports_requested_taken_and_out_of_range(storage: EtcdStorage, etcd_prefix: str) -> None:
    ports = NodePortAllocator(storage, etcd_prefix)
    assert await ports.allocate("default/a", 30080) == 30080
    with pytest.raises(ApiError) as taken:
        await ports.allocate("default/b", 30080, field="spec.ports[1].nodePort")
    assert taken.value.message == ('Service "b" is invalid: spec.ports[1].nodePort: Invalid value: 30080: '
                                   "provided port is already allocated")
    with pytest.raises(ApiError) as outside:
        await ports.allocate("default/b", 40000)
    assert outside.value.message.endswith("provided port is not in the valid range. "
                                          "The range of valid ports is 30000-32767")
    random_port = await ports.allocate("default/b")
    assert 30000 <= random_port <= 32767 and random_port != 30080


async def test_whole_service_lifecycle_with_type_changes(storage: EtcdStorage, etcd_prefix: str) -> None:
    allocators = ServiceAllocators(storage, etcd_prefix)
    svc = service("web", "NodePort", ports=[{"name": "dns-tcp", "port": 53, "protocol": "TCP", "nodePort": 30053},
                                            {"name": "dns-udp", "port": 53, "protocol": "UDP", "nodePort": 30053},
                                            {"name": "http", "port": 80, "protocol": "TCP"}])
    allocation = await allocators.allocate_for_service(svc)
    await allocation.commit()
    ip = svc["spec"]["clusterIP"]
    assert svc["spec"]["clusterIPs"] == [ip] and ServiceIPAllocator(storage, etcd_prefix).contains(ip)
    node_ports = [p["nodePort"] for p in svc["spec"]["ports"]]
    assert node_ports[:2] == [30053, 30053] and 30000 <= node_ports[2] <= 32767
    assert set((await allocators.ports.allocated()).values()) == {"default/web"}

    # NodePort -> ClusterIP: the strategy drops nodePorts; the allocation frees them once the write commits.
    as_cluster_ip = copy.deepcopy(svc)
    as_cluster_ip["spec"]["type"] = "ClusterIP"
    for port in as_cluster_ip["spec"]["ports"]:
        port.pop("nodePort")
    update = await allocators.allocate_for_service(as_cluster_ip, svc)
    assert update.claimed_ips == [] and sorted(update.stale_ports) == sorted({30053, node_ports[2]})
    assert len(await allocators.ports.allocated()) == 2  # still held until commit
    await update.commit()
    assert await allocators.ports.allocated() == {}
    assert as_cluster_ip["spec"]["clusterIP"] == ip

    # ClusterIP -> ExternalName frees the IP.
    external = copy.deepcopy(as_cluster_ip)
    external["spec"] = {"type": "ExternalName", "externalName": "example.org"}
    await (await allocators.allocate_for_service(external, as_cluster_ip)).commit()
    assert await allocators.ips.allocated() == {}


async def test_failed_allocation_and_failed_write_roll_back(storage: EtcdStorage, etcd_prefix: str) -> None:
    allocators = ServiceAllocators(storage, etcd_prefix)
    await allocators.ports.allocate("default/holder", 30100)
    clash = service("clash", "NodePort", clusterIP="10.96.0.50",
                    ports=[{"name": "a", "port": 80, "protocol": "TCP"},
                           {"name": "b", "port": 81, "protocol": "TCP", "nodePort": 30100}])
    with pytest.raises(ApiError) as error:
        await allocators.allocate_for_service(clash)
    assert "spec.ports[1].nodePort: Invalid value: 30100: provided port is already allocated" in error.value.message
    # Nothing the failed call claimed stays behind: the IP and the first port were released.
    assert await allocators.ips.allocated() == {}
    assert await allocators.ports.allocated() == {"30100": "default/holder"}

    ok = service("ok", "LoadBalancer", externalTrafficPolicy="Local")
    allocation = await allocators.allocate_for_service(ok)
    assert ok["spec"]["healthCheckNodePort"] and ok["spec"]["ports"][0]["nodePort"]
    await allocation.rollback()  # as if the Service create failed in storage
    assert await allocators.ips.allocated() == {}
    assert await allocators.ports.allocated() == {"30100": "default/holder"}


async def test_headless_and_release_for_service(storage: EtcdStorage, etcd_prefix: str) -> None:
    allocators = ServiceAllocators(storage, etcd_prefix)
    headless = service("db", clusterIP="None")
    await (await allocators.allocate_for_service(headless)).commit()
    assert headless["spec"]["clusterIP"] == "None" and await allocators.ips.allocated() == {}
    web = service("web", "NodePort")
    await (await allocators.allocate_for_service(web)).commit()
    assert len(await allocators.ips.allocated()) == 1 and len(await allocators.ports.allocated()) == 1
    unchanged = await allocators.allocate_for_service(copy.deepcopy(web), web)  # a no-op update claims nothing
    assert unchanged.claimed_ips == [] and unchanged.claimed_ports == [] and unchanged.stale_ports == []
    await allocators.release_for_service(web)
    assert await allocators.ips.allocated() == {} and await allocators.ports.allocated() == {}
