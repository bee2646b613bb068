"""Endpoints (core/v1): port defaults, address/port validation and the `kubectl get endpoints` table."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import names
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, doc
from apiserver.strategies.kind import KindStrategy

PROTOCOLS = ("SCTP", "TCP", "UDP")
_MAX_SHOWN = 3


def format_endpoints(endpoints: Obj) -> str:
    """formatEndpoints: up to three ip:port pairs and "+ N more..."."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    more = False
    for subset in subsets:
        addresses = subset.get("addresses") or []
        ports = subset.get("ports") or []
        pairs = [(a.get("ip", ""), None) for a in addresses] if not ports else \
            [(a.get("ip", ""), p.get("port")) for p in ports for a in addresses]
        count += len(pairs)
        for ip, port in pairs:
            if len(shown) == _MAX_SHOWN:
                more = True
                break
            host = f"[{ip}]" if ":" in ip else ip
            shown.append(host if port is None else f"{host}:{port}")
    text = ",".join(shown)
    return f"{text} + {count - _MAX_SHOWN} more..." if more else text


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class EndpointsStrategy(KindStrategy):
    tracks_generation = False

    columns = [
        Column("Endpoints", description=doc("core.v1.Endpoints", "subsets")),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
    ]

    def default(self, obj: Obj) -> None:
        for subset in obj.get("subsets") or []:
            for port in subset.get("ports") or []:
                port.setdefault("protocol", "TCP")

    def validate_kind(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for i, subset in enumerate(obj.get("subsets") or []):
            path = f"subsets[{i}]"
            for key in ("addresses", "notReadyAddresses"):
                for j, address in enumerate(subset.get(key) or []):
                    ip = address.get("ip") or ""
                    if not _valid_ip(ip):
                        causes.append(fe.invalid(f"{path}.{key}[{j}].ip", ip, "must be a valid IP address, (e.g. "
                                                                               "10.9.8.7 or 2001:db8::ffff)"))
            ports = subset.get("ports") or []
            for j, port in enumerate(ports):
                port_path = f"{path}.ports[{j}]"
                if len(ports) > 1 and not port.get("name"):
                    causes.append(fe.required(f"{port_path}.name"))
                elif port.get("name"):
                    causes += [fe.invalid(f"{port_path}.name", port["name"], msg)
                               for msg in names.dns1123_label(port["name"])]
                number = port.get("port")
                causes += [fe.invalid(f"{port_path}.port", number, msg) for msg in names.port_number(int(number or 0))]
                if port.get("protocol") not in PROTOCOLS:
                    causes.append(fe.not_supported(f"{port_path}.protocol", port.get("protocol"), PROTOCOLS))
        return causes

    def cells(self, obj: Obj, now: float) -> list[Any]:
        return [format_endpoints(obj), age_cell(obj, now)]
