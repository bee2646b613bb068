"""Node IPAM: give every Node a pod CIDR (spec.podCIDR/podCIDRs) carved from --cluster-cidr.

Each node gets the lowest free subnet of `node_cidr_mask_size` (a /24 of 10.244.0.0/16 by default); the
bridge CNI config on the node reads it. Allocations already on nodes are respected; a CIDR is never moved.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.client import Result

log = logging.getLogger(__name__)


class CidrAllocator:
    def __init__(self, cluster_cidr: str, mask_size: int) -> None:
        self.network = ipaddress.ip_network(cluster_cidr)
        self.mask_size = mask_size
        self.taken: dict[str, str] = {}  # cidr -> node

    def occupy(self, cidr: str, node: str) -> None:
        self.taken[str(ipaddress.ip_network(cidr, strict=False))] = node

    def release_node(self, node: str) -> None:
        for cidr in [c for c, n in self.taken.items() if n == node]:
            del self.taken[cidr]

    def allocate(self, node: str) -> str:
        for subnet in self.network.subnets(new_prefix=self.mask_size):
            if str(subnet) not in self.taken:
                self.taken[str(subnet)] = node
                return str(subnet)
        raise RuntimeError(f"cluster CIDR {self.network} is exhausted")


class NodeIpamReconciler:
    name = "nodeipam"

    def __init__(self, *, client: Any, informers: Any, cluster_cidr: str = "10.244.0.0/16",
                 mask_size: int = 24) -> None:
        self.client = client
        self.nodes = informers.get("nodes")
        self.allocator = CidrAllocator(cluster_cidr, mask_size)
        self.queue: Any = None

    @property
    def informers(self) -> list[Any]:
        return [self.nodes]

    def watch(self, queue: Any) -> None:
        self.queue = queue
        self.nodes.add_handler(on_add=self._added, on_update=lambda _o, new: self._added(new),
                               on_delete=self._deleted)

    def _added(self, node: Obj) -> None:
        cidr = node.get("spec", {}).get("podCIDR")
        if cidr:
            self.allocator.occupy(cidr, node["metadata"]["name"])
        else:
            self.queue.add(node["metadata"]["name"])

    def _deleted(self, node: Obj) -> None:
        self.allocator.release_node(node["metadata"]["name"])

    async def reconcile(self, key: str) -> Result:
        node = self.nodes.store.get(key)
        if node is None or node.get("spec", {}).get("podCIDR"):
            return Result()
        for other in self.nodes.store.list():  # the cache is synced: every existing allocation is known
            cidr = other.get("spec", {}).get("podCIDR")
            if cidr:
                self.allocator.occupy(cidr, other["metadata"]["name"])
        self.allocator.release_node(key)
        cidr = self.allocator.allocate(key)
        body = {"metadata": {"resourceVersion": node["metadata"].get("resourceVersion")},
                "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}
        try:
            await self.client.patch("nodes", key, body, patch_type="merge")
        except ApiError as err:
            self.allocator.release_node(key)
            if err.code == 404:
                return Result()
            raise
        log.info("node %s: podCIDR %s", key, cidr)
        return Result()
