"""EndpointSlices (discovery.k8s.io/v1): port defaults, validation, the immutable addressType and the
`kubectl get endpointslices` table."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import names
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, doc, list_with_more
from apiserver.strategies.kind import KindStrategy

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
PROTOCOLS = ("SCTP", "TCP", "UDP")
MAX_ENDPOINTS = 1000
MAX_PORTS = 100
MAX_ADDRESSES = 100


class EndpointSliceStrategy(KindStrategy):
    tracks_generation = False

    columns = [
        Column("AddressType", description=doc("discovery.v1.EndpointSlice", "addressType")),
        Column("Ports", description=doc("discovery.v1.EndpointSlice", "ports")),
        Column("Endpoints", description=doc("discovery.v1.EndpointSlice", "endpoints")),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
    ]

    def default(self, obj: Obj) -> None:
        for port in obj.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("name", "")

    def validate_kind(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        address_type = obj.get("addressType")
        if not address_type:
            causes.append(fe.required("addressType"))
        elif address_type not in ADDRESS_TYPES:
            causes.append(fe.not_supported("addressType", address_type, ADDRESS_TYPES))
        endpoints = obj.get("endpoints") or []
        if len(endpoints) > MAX_ENDPOINTS:
            causes.append(fe.too_many("endpoints", len(endpoints), MAX_ENDPOINTS))
        for i, endpoint in enumerate(endpoints):
            addresses = endpoint.get("addresses") or []
            if not addresses:
                causes.append(fe.required(f"endpoints[{i}].addresses", "must contain at least 1 address"))
            elif len(addresses) > MAX_ADDRESSES:
                causes.append(fe.too_many(f"endpoints[{i}].addresses", len(addresses), MAX_ADDRESSES))
        ports = obj.get("ports") or []
        if len(ports) > MAX_PORTS:
            causes.append(fe.too_many("ports", len(ports), MAX_PORTS))
        seen: set[str] = set()
        for i, port in enumerate(ports):
            name = port.get("name") or ""
            if name:
                causes += [fe.invalid(f"ports[{i}].name", name, msg) for msg in names.dns1123_label(name)]
            if name in seen:
                causes.append(fe.duplicate(f"ports[{i}].name", name))
            seen.add(name)
            if port.get("protocol") not in PROTOCOLS:
                causes.append(fe.not_supported(f"ports[{i}].protocol", port.get("protocol"), PROTOCOLS))
        return causes

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        if new.get("addressType") != old.get("addressType"):
            return [fe.immutable("addressType", new.get("addressType"))]
        return []

    def cells(self, obj: Obj, now: float) -> list[Any]:
        ports = obj.get("ports") or []
        port_texts = [str(p["port"]) if p.get("port") is not None else (p.get("name") or "*") for p in ports]
        addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
        return [obj.get("addressType", ""), list_with_more(port_texts, len(port_texts)),
                list_with_more(addresses, len(addresses)), age_cell(obj, now)]
