"""ServiceAllocators: ClusterIP and NodePort allocation for whole Services, as the Service registry does it.

    allocators = ServiceAllocators(storage, prefix)                  # 10.96.0.0/12, 30000-32767
    allocation = await allocators.allocate_for_service(svc, old)     # fills spec.clusterIP(s)/nodePorts in place
    try:
        ... write the Service ...
    except BaseException:
        await allocation.rollback()     # frees what this call claimed
        raise
    await allocation.commit()           # frees what `old` held and `svc` no longer uses
    ...
    await allocators.release_for_service(svc)   # after the Service is deleted

Handles ClusterIP/NodePort/LoadBalancer types, headless (`clusterIP: None`), ExternalName (no IP), per-port
nodePorts (one number may serve a TCP and a UDP port of the same Service), LoadBalancer
`allocateLoadBalancerNodePorts: false`, healthCheckNodePort for LoadBalancer + externalTrafficPolicy Local,
and type changes in both directions. IPv4 single-stack only: the first clusterIPs entry is allocated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from aiokube.api.types import Obj
from apiserver.allocators.nodeport import DEFAULT_NODE_PORT_RANGE, NodePortAllocator
from apiserver.allocators.serviceip import DEFAULT_SERVICE_CIDR, ServiceIPAllocator
from apiserver.storage.interface import Storage


def service_key(svc: Obj) -> str:
    meta = svc.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def _wants_cluster_ip(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None"


def _wants_node_ports(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    kind = spec.get("type")
    if kind == "NodePort":
        return True
    return kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True) is not False


def _wants_health_check_port(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def held_cluster_ip(svc: Obj | None) -> str | None:
    """The allocated ClusterIP a stored Service holds (None for headless/ExternalName)."""
    if svc is None:
        return None
    ip = (svc.get("spec") or {}).get("clusterIP")
    return ip if ip and ip != "None" and (svc.get("spec") or {}).get("type") != "ExternalName" else None


def held_node_ports(svc: Obj | None) -> set[int]:
    """Every node port number a stored Service holds, healthCheckNodePort included."""
    if svc is None:
        return set()
    spec = svc.get("spec") or {}
    ports = {int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        ports.add(int(spec["healthCheckNodePort"]))
    return ports


@dataclass
class ServiceAllocation:
    """What one allocate_for_service call changed, so the caller can undo it or finish it."""

    allocators: ServiceAllocators
    svc_key: str
    claimed_ips: list[str] = field(default_factory=list)
    claimed_ports: list[int] = field(default_factory=list)
    stale_ips: list[str] = field(default_factory=list)
    stale_ports: list[int] = field(default_factory=list)

    async def rollback(self) -> None:
        """The Service write failed: free every value this allocation claimed."""
        for ip in self.claimed_ips:
            await self.allocators.ips.release(ip, self.svc_key)
        for port in self.claimed_ports:
            await self.allocators.ports.release(port, self.svc_key)
        self.claimed_ips, self.claimed_ports = [], []

    async def commit(self) -> None:
        """The Service write succeeded: free what the old object held and the new one dropped."""
        for ip in self.stale_ips:
            await self.allocators.ips.release(ip, self.svc_key)
        for port in self.stale_ports:
            await self.allocators.ports.release(port, self.svc_key)
        self.stale_ips, self.stale_ports = [], []


class ServiceAllocators:
    def __init__(self, storage: Storage, prefix: str, *, service_cidr: str = DEFAULT_SERVICE_CIDR,
                 node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE, rng: random.Random | None = None) -> None:
        self.ips = ServiceIPAllocator(storage, prefix, service_cidr, rng=rng)
        self.ports = NodePortAllocator(storage, prefix, node_port_range, rng=rng)

    async def allocate_for_service(self, svc: Obj, old: Obj | None = None) -> ServiceAllocation:
        """Fill in svc's ClusterIP and nodePorts (in place), claiming them in storage. Raises ApiError (422 for a
        taken or out-of-range request, 500 for a full range) after undoing its own claims."""
        allocation = ServiceAllocation(self, service_key(svc))
        try:
            await self._allocate_cluster_ip(svc, old, allocation)
            await self._allocate_node_ports(svc, old, allocation)
        except BaseException:
            await allocation.rollback()
            raise
        return allocation

    async def release_for_service(self, svc: Obj) -> None:
        """Free everything a deleted Service held (only values it still owns)."""
        key = service_key(svc)
        ip = held_cluster_ip(svc)
        if ip:
            await self.ips.release(ip, key)
        for port in held_node_ports(svc):
            await self.ports.release(port, key)

    async def _allocate_cluster_ip(self, svc: Obj, old: Obj | None, allocation: ServiceAllocation) -> None:
        spec = svc.setdefault("spec", {})
        old_ip = held_cluster_ip(old)
        new_ip: str | None = None
        if _wants_cluster_ip(svc):
            requested = spec.get("clusterIP") or ((spec.get("clusterIPs") or [None])[0])
            if requested and requested == old_ip:
                new_ip = requested
            else:
                # A requested IP this name already owns (a retried request, or a create of a name that exists)
                # is not this call's claim: a rollback must leave it to its owner.
                held_already = bool(requested) and await self.ips.owner(requested) == allocation.svc_key
                new_ip = await self.ips.allocate(allocation.svc_key, requested or None)
                if not held_already:
                    allocation.claimed_ips.append(new_ip)
            spec["clusterIP"] = new_ip
            ips = list(spec.get("clusterIPs") or [])
            spec["clusterIPs"] = [new_ip, *ips[1:]]
        if old_ip and old_ip != new_ip:
            allocation.stale_ips.append(old_ip)

    async def _allocate_node_ports(self, svc: Obj, old: Obj | None, allocation: ServiceAllocation) -> None:
        spec = svc.setdefault("spec", {})
        held = held_node_ports(old)
        in_use: set[int] = set()

        async def take(requested: int | None, field_path: str) -> int:
            if requested and (requested in held or requested in in_use):
                in_use.add(requested)  # kept from the old object, or shared by a TCP and a UDP port
                return requested
            held_already = bool(requested) and await self.ports.owner(requested or 0) == allocation.svc_key
            port = await self.ports.allocate(allocation.svc_key, requested, field=field_path)
            if not held_already:
                allocation.claimed_ports.append(port)
            in_use.add(port)
            return port

        if _wants_node_ports(svc):
            for i, port in enumerate(spec.get("ports") or []):
                port["nodePort"] = await take(int(port.get("nodePort") or 0) or None, f"spec.ports[{i}].nodePort")
        elif spec.get("type") == "LoadBalancer":
            # allocateLoadBalancerNodePorts=false: keep explicitly given ports, allocate none.
            for i, port in enumerate(spec.get("ports") or []):
                if port.get("nodePort"):
                    await take(int(port["nodePort"]), f"spec.ports[{i}].nodePort")
        if _wants_health_check_port(svc):
            spec["healthCheckNodePort"] = await take(int(spec.get("healthCheckNodePort") or 0) or None,
                                                     "spec.healthCheckNodePort")
        allocation.stale_ports.extend(sorted(held - in_use))
