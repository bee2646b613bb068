"""The proxy's view of the cluster: Services and EndpointSlices reduced to `ServicePort`s, pure functions only.

One `ServicePort` per (Service, port): its ClusterIP, NodePort, affinity and traffic policies, and the
endpoints EndpointSlices list for that port name (matched by `kubernetes.io/service-name` and the port's name,
which is how a named targetPort reaches the proxy already resolved to a number).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokube.api.types import Obj

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    port: int
    ready: bool
    serving: bool
    terminating: bool
    node_name: str | None


@dataclass(frozen=True, slots=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str  # nft's spelling: tcp, udp, sctp
    cluster_ip: str
    port: int
    node_port: int | None
    affinity_timeout: int | None  # seconds of ClientIP affinity, None without affinity
    external_local: bool  # externalTrafficPolicy Local: NodePort traffic only to this node's endpoints
    internal_local: bool  # internalTrafficPolicy Local: ClusterIP traffic only to this node's endpoints
    endpoints: tuple[Endpoint, ...]

    @property
    def id(self) -> str:
        """Human-readable identity, unique per node: `ns/name/proto/portname` (kube-proxy's spelling)."""
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name or self.port}"

    def usable_endpoints(self, node_name: str, *, local_only: bool) -> list[Endpoint]:
        """Ready endpoints (falling back to serving-but-terminating ones when none is ready, like kube-proxy),
        restricted to `node_name` when `local_only`; sorted so rule text is deterministic."""
        candidates = [e for e in self.endpoints if not local_only or e.node_name == node_name]
        chosen = [e for e in candidates if e.ready] or [e for e in candidates if e.serving and e.terminating]
        return sorted(chosen, key=lambda e: (e.ip, e.port))


def _is_proxied(service: Obj) -> bool:
    spec = service.get("spec") or {}
    ip = str(spec.get("clusterIP") or "")
    return spec.get("type", "ClusterIP") != "ExternalName" and bool(ip) and ip != "None" and ":" not in ip


def _slice_endpoints(slices: Iterable[Obj], port_name: str, protocol: str) -> tuple[Endpoint, ...]:
    seen: dict[tuple[str, int], Endpoint] = {}
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType", "IPv4") != "IPv4":
            continue
        number = None
        for slice_port in endpoint_slice.get("ports") or []:
            if (slice_port.get("name") or "") == port_name and slice_port.get("protocol", "TCP") == protocol:
                number = slice_port.get("port")
        if not number:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            addresses = endpoint.get("addresses") or []
            if not addresses:
                continue
            conditions = endpoint.get("conditions") or {}
            # An unset condition means "unknown" and counts as true, as the EndpointSlice API defines.
            ready = conditions.get("ready") is not False
            item = Endpoint(ip=addresses[0], port=int(number), ready=ready,
                            serving=conditions.get("serving", ready) is not False,
                            terminating=conditions.get("terminating") is True, node_name=endpoint.get("nodeName"))
            # Duplicates across slices (a pod briefly in two slices): keep the readier view.
            previous = seen.get((item.ip, item.port))
            if previous is None or (item.ready and not previous.ready):
                seen[(item.ip, item.port)] = item
    return tuple(seen.values())


def slices_by_service(slices: Iterable[Obj]) -> dict[tuple[str, str], list[Obj]]:
    """EndpointSlices grouped by the (namespace, name) of the Service they belong to."""
    grouped: dict[tuple[str, str], list[Obj]] = {}
    for endpoint_slice in slices:
        meta = endpoint_slice.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            grouped.setdefault((meta.get("namespace") or "default", owner), []).append(endpoint_slice)
    return grouped


def ports_of_service(service: Obj, slices: list[Obj]) -> list[ServicePort]:
    """The proxied ports of one Service, with endpoints from its EndpointSlices (empty if not proxied)."""
    if not _is_proxied(service):
        return []
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    namespace, name = meta.get("namespace") or "default", meta.get("name", "")
    affinity = None
    if spec.get("sessionAffinity") == "ClientIP":
        affinity = int(((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
                       .get("timeoutSeconds") or 10800)
    has_node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
    result: list[ServicePort] = []
    for port in spec.get("ports") or []:
        protocol = port.get("protocol", "TCP")
        if protocol not in PROTOCOLS or not port.get("port"):
            continue
        port_name = port.get("name") or ""
        result.append(ServicePort(
            namespace=namespace, name=name, port_name=port_name, protocol=PROTOCOLS[protocol],
            cluster_ip=spec["clusterIP"], port=int(port["port"]),
            node_port=int(port["nodePort"]) if has_node_ports and port.get("nodePort") else None,
            affinity_timeout=affinity,
            external_local=has_node_ports and spec.get("externalTrafficPolicy") == "Local",
            internal_local=spec.get("internalTrafficPolicy") == "Local",
            endpoints=_slice_endpoints(slices, port_name, protocol)))
    return result


def service_ports(services: Iterable[Obj], slices: Iterable[Obj]) -> list[ServicePort]:
    """Every proxied port of every Service, with its endpoints; sorted by id."""
    grouped = slices_by_service(slices)
    result: list[ServicePort] = []
    for service in services:
        meta = service.get("metadata") or {}
        result += ports_of_service(service, grouped.get((meta.get("namespace") or "default", meta.get("name", "")),
                                                        []))
    return sorted(result, key=lambda p: p.id)
