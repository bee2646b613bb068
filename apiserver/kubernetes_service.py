"""The `kubernetes` Service in `default`: how pods find the API server (ClusterIP = the first address of the
service range, port 443 -> this server's port), with an Endpoints and an EndpointSlice listing the advertised
address of every live API server, as kube-apiserver's bootstrap controller writes them.

Written through the ordinary create/update handlers (so allocation, validation and managedFields apply; the
manager is `kube-apiserver`). At start-up a server adds its own address (keeping the others'); from then on
apiserver/endpoint_leases.py keeps the list to the servers whose lease is fresh (`set_endpoint_addresses`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from apiserver.allocators import kubernetes_service_ip
from apiserver.config import Config
from apiserver.handlers.create import WriteOptions, create_object
from apiserver.handlers.state import ServerState
from apiserver.handlers.update import create_or_update

log = logging.getLogger(__name__)

NAME, NAMESPACE, PORT_NAME = "kubernetes", "default", "https"
_MANAGER = WriteOptions(manager="kube-apiserver")
_ATTEMPTS = 8  # another API server writing the same Endpoints at start-up is the only source of conflicts


def advertise_address(config: Config) -> str:
    """--advertise-address, else --bind-address, else (binding every interface) the host's primary address."""
    if config.advertise_address:
        return config.advertise_address
    bind = ipaddress.ip_address(config.bind_address)
    if not bind.is_unspecified:
        return str(bind)
    # A UDP "connect" sends nothing; it only asks the kernel which source address its default route uses.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def _service(cluster_ip: str, port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "sessionAffinity": "None",
                     "ports": [{"name": PORT_NAME, "port": 443, "protocol": "TCP", "targetPort": port}]}}


def _endpoints(addresses: list[str], port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"endpointslice.kubernetes.io/skip-mirror":
                                                                            "true"}},
            "subsets": [{"addresses": [{"ip": ip} for ip in addresses],
                         "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}]}


def _endpoint_slice(addresses: list[str], port: int) -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": NAME}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in addresses],
            "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}


def _listed_addresses(plural: str, obj: Obj) -> list[str]:
    if plural == "endpoints":
        return [a.get("ip", "") for s in obj.get("subsets") or [] for a in s.get("addresses") or []]
    return [ip for e in obj.get("endpoints") or [] for ip in e.get("addresses") or []]


async def ensure_kubernetes_service(state: ServerState) -> None:
    config = state.config
    address, port = advertise_address(config), config.port
    services = state.registry.handle("services")
    try:
        await create_object(state, services, NAMESPACE, _service(kubernetes_service_ip(
            config.service_cluster_ip_range), port), _MANAGER)
    except ApiError as error:
        if error.reason != "AlreadyExists":
            raise
    await _ensure_listed(state, "endpoints", address, port, _endpoints)
    await _ensure_listed(state, "endpointslices", address, port, _endpoint_slice)
    log.info("kubernetes Service: %s:443 -> %s:%d", kubernetes_service_ip(config.service_cluster_ip_range),
             address, port)


async def set_endpoint_addresses(state: ServerState, addresses: list[str], port: int) -> None:
    """Make the Endpoints and EndpointSlice list exactly `addresses` (the live servers, this one among them).
    The stored port is kept (the last server to start set it): servers on different ports would otherwise flap."""
    for plural, build in (("endpoints", _endpoints), ("endpointslices", _endpoint_slice)):
        await _write_listed(state, plural, port, build, lambda _listed: sorted(set(addresses)), fix_port=False)


async def _ensure_listed(state: ServerState, plural: str, address: str, port: int,
                         build: Callable[[list[str], int], Obj]) -> None:
    """Create the object listing `address`, or add `address` to the stored one (keeping the others')."""
    await _write_listed(state, plural, port, build, lambda listed: sorted({*listed, address}), fix_port=True)


async def _write_listed(state: ServerState, plural: str, port: int, build: Callable[[list[str], int], Obj],
                        wanted_from: Callable[[list[str]], list[str]], *, fix_port: bool) -> None:
    """Create the object, or compare-and-swap it to the addresses `wanted_from` derives from the stored ones
    (and, with `fix_port`, to this server's port); a write only when something changes."""

    def update(stored: Obj) -> Obj | None:
        listed = _listed_addresses(plural, stored)
        addresses = wanted_from(listed)
        wanted = build(addresses, port)
        if sorted(listed) == addresses and (not fix_port or _ports_of(plural, stored) == _ports_of(plural, wanted)):
            return None
        if not fix_port:
            wanted = _with_ports_of(plural, stored, wanted)
        wanted["metadata"] = {**stored["metadata"], **wanted["metadata"]}
        return wanted

    if not await create_or_update(state, state.registry.handle(plural), NAMESPACE, NAME,
                                  create=lambda: build(wanted_from([]), port), update=update, opts=_MANAGER,
                                  attempts=_ATTEMPTS):
        raise ApiError(409, f"could not update {plural} {NAMESPACE}/{NAME}: it kept changing", "Conflict")


def _with_ports_of(plural: str, stored: Obj, wanted: Obj) -> Obj:
    """`wanted` carrying the stored ports (when it has any) instead of this server's."""
    if plural == "endpoints":
        ports = next((s.get("ports") for s in stored.get("subsets") or [] if s.get("ports")), None)
        if ports:
            wanted["subsets"] = [{**s, "ports": ports} for s in wanted["subsets"]]
    elif stored.get("ports"):
        wanted["ports"] = stored["ports"]
    return wanted


def _ports_of(plural: str, obj: Obj) -> object:
    if plural == "endpoints":
        return [s.get("ports") for s in obj.get("subsets") or []][:1]
    return obj.get("ports")
