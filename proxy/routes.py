"""host-gw routes: every other Node's spec.podCIDR via that Node's InternalIP.

`desired_routes` is pure; `RouteSyncer` applies the difference with `ip route replace/del … proto 250`. The
proto number marks the routes this proxy owns: it only ever lists and deletes routes carrying it, so routes
added by anyone else are never touched.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable

from aiokube.api.types import Obj
from proxy.commands import CommandRunner

ROUTE_PROTO = "250"


def internal_ip(node: Obj) -> str | None:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP" and address.get("address"):
            return str(address["address"])
    return None


def desired_routes(nodes: Iterable[Obj], this_node: str) -> dict[str, str]:
    """podCIDR -> via IP for every other node that has both (IPv4 only)."""
    routes: dict[str, str] = {}
    for node in nodes:
        if (node.get("metadata") or {}).get("name") == this_node:
            continue
        cidr, via = (node.get("spec") or {}).get("podCIDR"), internal_ip(node)
        if not cidr or not via:
            continue
        try:
            network = ipaddress.ip_network(cidr, strict=False)
            if network.version != 4 or ipaddress.ip_address(via).version != 4:
                continue
        except ValueError:
            continue
        routes[str(network)] = via
    return routes


class RouteSyncer:
    def __init__(self, runner: CommandRunner) -> None:
        self._runner = runner

    async def current(self) -> dict[str, str]:
        out = await self._runner.run(["ip", "-j", "-4", "route", "show", "proto", ROUTE_PROTO])
        return {r["dst"]: r.get("gateway", "") for r in json.loads(out or "[]") if r.get("dst")}

    async def sync(self, wanted: dict[str, str]) -> None:
        current = await self.current()
        for cidr, via in wanted.items():
            if current.get(cidr) != via:
                await self._runner.run(["ip", "route", "replace", cidr, "via", via, "proto", ROUTE_PROTO])
        for cidr in current.keys() - wanted.keys():
            await self._runner.run(["ip", "route", "del", cidr, "proto", ROUTE_PROTO], check=False)

    async def cleanup(self) -> None:
        await self.sync({})
