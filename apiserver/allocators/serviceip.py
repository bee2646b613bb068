"""ServiceIPAllocator: ClusterIPs from the service CIDR, one storage key per IP
(`{prefix}/ranges/serviceips/10.96.0.12` -> its Service's `namespace/name`).

Usable addresses exclude the network and broadcast addresses. Random picks prefer the range above the low
band (min(max(16, size/16), 256) addresses), which Kubernetes keeps for statically requested IPs such as the
DNS Service's 10.96.0.10; the first address (10.96.0.1) is the `kubernetes` Service's.
"""

from __future__ import annotations

import ipaddress
import random

from aiokube.api.errors import ApiError, invalid
from apiserver.allocators.keyed_range import AlreadyAllocatedError, KeyedRangeAllocator, RangeFullError
from apiserver.storage.interface import Storage
from apiserver.strategies import fielderrors as fe

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"


def kubernetes_service_ip(cidr: str = DEFAULT_SERVICE_CIDR) -> str:
    """The first usable IP of the range: the `kubernetes` Service's ClusterIP."""
    return str(ipaddress.ip_network(cidr).network_address + 1)


def _name_of(svc_key: str) -> str:
    return svc_key.rsplit("/", 1)[-1]


class ServiceIPAllocator:
    def __init__(self, storage: Storage, prefix: str, cidr: str = DEFAULT_SERVICE_CIDR, *,
                 rng: random.Random | None = None) -> None:
        self.network = ipaddress.ip_network(cidr)
        self._first = int(self.network.network_address) + 1
        size = max(self.network.num_addresses - 2, 0)
        low_band = min(max(16, size // 16), 256)
        self._range = KeyedRangeAllocator(storage, f"{prefix.rstrip('/')}/ranges/serviceips", size,
                                          self._ip_of, preferred_from=low_band, rng=rng)
        self._size = size

    def _ip_of(self, offset: int) -> str:
        return str(ipaddress.ip_address(self._first + offset))

    def _offset_of(self, ip: str) -> int | None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if address.version != self.network.version:
            return None
        offset = int(address) - self._first
        return offset if 0 <= offset < self._size else None

    def contains(self, ip: str) -> bool:
        return self._offset_of(ip) is not None

    async def allocate(self, svc_key: str, requested: str | None = None) -> str:
        """Reserve `requested` (or a random free IP) for the Service `svc_key` ("namespace/name").
        Raises 422 when the requested IP is out of range or taken, 500 when the range is full."""
        if requested:
            offset = self._offset_of(requested)
            if offset is None:
                raise self._invalid(svc_key, requested, f"failed to allocate IP {requested}: the provided IP "
                                    f"({requested}) is not in the valid range. The range of valid IPs is "
                                    f"{self.network}")
            try:
                await self._range.claim(offset, svc_key)
            except AlreadyAllocatedError:
                raise self._invalid(svc_key, requested, f"failed to allocate IP {requested}: provided IP is "
                                    "already allocated") from None
            return requested
        try:
            return self._ip_of(await self._range.claim_any(svc_key))
        except RangeFullError:
            raise ApiError(500, "Internal error occurred: failed to allocate a serviceIP: range is full",
                           "InternalError") from None

    async def release(self, ip: str, svc_key: str | None = None) -> bool:
        """Free `ip` (only if `svc_key` owns it, when given). IPs outside the range are ignored."""
        offset = self._offset_of(ip)
        return False if offset is None else await self._range.release(offset, svc_key)

    async def owner(self, ip: str) -> str | None:
        offset = self._offset_of(ip)
        return None if offset is None else await self._range.owner(offset)

    async def allocated(self) -> dict[str, str]:
        return await self._range.allocated()

    @staticmethod
    def _invalid(svc_key: str, ip: str, detail: str) -> ApiError:
        return invalid("Service", "", _name_of(svc_key), [fe.invalid("spec.clusterIPs", [ip], detail)])
