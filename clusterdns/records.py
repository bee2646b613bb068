"""The cluster zone as data: Services + EndpointSlices -> `ZoneIndex`, a pure function (Kubernetes DNS spec).

    <svc>.<ns>.svc.<zone>                  A     the ClusterIP; for headless Services every ready endpoint IP
    <host>.<svc>.<ns>.svc.<zone>           A     headless endpoints, by `hostname` (else by dashed IP, 10-244-1-5)
    _<port>._<proto>.<svc>.<ns>.svc.<zone> SRV   named ports: the Service name, or one target per endpoint
    <svc>.<ns>.svc.<zone>                  CNAME ExternalName Services
    <a-b-c-d>.<ns>.pod.<zone>              A     a.b.c.d (CoreDNS' "pods insecure" answer)
    <reversed ip>.in-addr.arpa             PTR   ClusterIPs and named headless endpoints

A name inside the zone that is not listed (and is no parent of a listed one) is NXDOMAIN; a listed name asked
for another type answers NOERROR with no records (NODATA).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokube.api.types import Obj

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True, slots=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str


@dataclass
class ZoneIndex:
    zone: str  # e.g. "cluster.local" (no trailing dot)
    a: dict[str, list[str]] = field(default_factory=dict)
    srv: dict[str, list[Srv]] = field(default_factory=dict)
    cname: dict[str, str] = field(default_factory=dict)
    ptr: dict[str, str] = field(default_factory=dict)
    parents: set[str] = field(default_factory=set)  # empty non-terminals (svc.zone, ns.svc.zone, …)

    def in_zone(self, name: str) -> bool:
        return name == self.zone or name.endswith("." + self.zone) or name.endswith(".in-addr.arpa")

    def pod_a(self, name: str) -> list[str]:
        """`1-2-3-4.<ns>.pod.<zone>` -> ["1.2.3.4"] for any namespace (no check that such a pod exists)."""
        labels = name.removesuffix("." + self.zone).split(".")
        if len(labels) == 3 and labels[2] == "pod":
            try:
                return [str(ipaddress.IPv4Address(labels[0].replace("-", ".")))]
            except ValueError:
                return []
        return []

    def exists(self, name: str) -> bool:
        return (name in self.a or name in self.srv or name in self.cname or name in self.ptr
                or name in self.parents or name == self.zone or bool(self.pod_a(name)))


def normalize(name: str) -> str:
    return name.rstrip(".").lower()


def reverse_name(ip: str) -> str:
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


def dashed(ip: str) -> str:
    return ip.replace(".", "-")


def _ready_endpoints(slices: Iterable[Obj], publish_not_ready: bool) -> list[tuple[str, str | None, Obj]]:
    """(ip, hostname, slice) of each usable endpoint, once per IP."""
    seen: dict[str, tuple[str, str | None, Obj]] = {}
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType", "IPv4") != "IPv4":
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            ready = (endpoint.get("conditions") or {}).get("ready") is not False
            if not (ready or publish_not_ready):
                continue
            for ip in (endpoint.get("addresses") or [])[:1]:
                seen.setdefault(ip, (ip, endpoint.get("hostname"), endpoint_slice))
    return sorted(seen.values(), key=lambda item: item[0])


def build_index(services: Iterable[Obj], slices: Iterable[Obj], zone: str = "cluster.local") -> ZoneIndex:
    zone = normalize(zone)
    index = ZoneIndex(zone=zone)
    index.parents.update({f"svc.{zone}", f"pod.{zone}"})
    slices_by_service: dict[tuple[str, str], list[Obj]] = {}
    for endpoint_slice in slices:
        meta = endpoint_slice.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            slices_by_service.setdefault((meta.get("namespace") or "default", owner), []).append(endpoint_slice)
    for service in services:
        meta, spec = service.get("metadata") or {}, service.get("spec") or {}
        namespace, name = meta.get("namespace") or "default", meta.get("name", "")
        base = f"{name}.{namespace}.svc.{zone}".lower()
        index.parents.add(f"{namespace}.svc.{zone}".lower())
        index.parents.add(f"{namespace}.pod.{zone}".lower())
        if spec.get("type") == "ExternalName":
            index.cname[base] = normalize(spec.get("externalName") or "")
            continue
        cluster_ip = spec.get("clusterIP")
        if not cluster_ip:
            continue
        named_ports = [p for p in spec.get("ports") or [] if p.get("name")]
        if cluster_ip != "None":
            index.a[base] = [cluster_ip]
            index.ptr[reverse_name(cluster_ip)] = base
            for port in named_ports:
                srv_name = f"_{port['name']}._{port.get('protocol', 'TCP').lower()}.{base}"
                index.srv[srv_name] = [Srv(0, 100, int(port["port"]), base)]
                index.parents.add(f"_{port.get('protocol', 'TCP').lower()}.{base}")
            continue
        # Headless: the endpoints themselves.
        endpoints = _ready_endpoints(slices_by_service.get((namespace, name), []),
                                     bool(spec.get("publishNotReadyAddresses")))
        index.a[base] = [ip for ip, _, _ in endpoints]
        weight = max(1, 100 // max(1, len(endpoints)))
        for ip, hostname, endpoint_slice in endpoints:
            host = f"{hostname or dashed(ip)}.{base}".lower()
            index.a.setdefault(host, []).append(ip)
            if hostname:
                index.ptr[reverse_name(ip)] = host
            for slice_port in endpoint_slice.get("ports") or []:
                if not slice_port.get("name") or not slice_port.get("port"):
                    continue
                protocol = str(slice_port.get("protocol", "TCP")).lower()
                srv_name = f"_{slice_port['name']}._{protocol}.{base}"
                index.srv.setdefault(srv_name, []).append(Srv(0, weight, int(slice_port["port"]), host))
                index.parents.add(f"_{protocol}.{base}")
    return index
