"""NodePortAllocator: NodePorts from 30000-32767, one storage key per port
(`{prefix}/ranges/servicenodeports/30080` -> its Service's `namespace/name`).

One port number serves every protocol: a Service may use the same nodePort for its TCP and UDP ports
(handled by ServiceAllocators, which claims the number once).
"""

from __future__ import annotations

import random

from aiokube.api.errors import ApiError, invalid
from apiserver.allocators.keyed_range import AlreadyAllocatedError, KeyedRangeAllocator, RangeFullError
from apiserver.storage.interface import Storage
from apiserver.strategies import fielderrors as fe

DEFAULT_NODE_PORT_RANGE = (30000, 32767)


class NodePortAllocator:
    def __init__(self, storage: Storage, prefix: str, port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE, *,
                 rng: random.Random | None = None) -> None:
        self.base, self.last = port_range
        self._range = KeyedRangeAllocator(storage, f"{prefix.rstrip('/')}/ranges/servicenodeports",
                                          self.last - self.base + 1, lambda offset: str(self.base + offset), rng=rng)

    @property
    def range_text(self) -> str:
        return f"{self.base}-{self.last}"

    def contains(self, port: int) -> bool:
        return self.base <= port <= self.last

    async def allocate(self, svc_key: str, requested: int | None = None, *, field: str = "spec.ports[0].nodePort") \
            -> int:
        """Reserve `requested` (or a random free port) for `svc_key`. `field` names the port in 422 errors."""
        name = svc_key.rsplit("/", 1)[-1]
        if requested:
            if not self.contains(requested):
                raise invalid("Service", "", name, [fe.invalid(
                    field, requested, f"provided port is not in the valid range. The range of valid ports is "
                    f"{self.range_text}")])
            try:
                await self._range.claim(requested - self.base, svc_key)
            except AlreadyAllocatedError:
                raise invalid("Service", "", name, [fe.invalid(field, requested,
                                                               "provided port is already allocated")]) from None
            return requested
        try:
            return self.base + await self._range.claim_any(svc_key)
        except RangeFullError:
            raise ApiError(500, "Internal error occurred: failed to allocate a nodePort: range is full",
                           "InternalError") from None

    async def release(self, port: int, svc_key: str | None = None) -> bool:
        if not self.contains(port):
            return False
        return await self._range.release(port - self.base, svc_key)

    async def owner(self, port: int) -> str | None:
        return await self._range.owner(port - self.base) if self.contains(port) else None

    async def allocated(self) -> dict[str, str]:
        return await self._range.allocated()
