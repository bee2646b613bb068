"""The node's pod CIDR, from its Node object to the container runtime's network config.

As the kubelet does: the Node is registered without spec.podCIDR (unless `--pod-cidr` fixes it), the
controller-manager's nodeipam allocates one, and the agent, watching its own Node, hands it to the runtime with
CRI UpdateRuntimeConfig. containerd then renders its CNI conflist template into its conf dir and loads it, and
only then does the runtime report NetworkReady (and so the Node Ready). A runtime that reports its network not
ready again (a restarted containerd whose conf dir was emptied) gets the CIDR again on the next check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokube.api.types import Obj
from aiokube.client import Informer
from kubelet.cri import CriError

log = logging.getLogger(__name__)

NETWORK_READY = "NetworkReady"


class NetworkRuntime(Protocol):
    """The two CRI calls this needs (kubelet.cri.RuntimeClient has them)."""

    async def status(self) -> Any: ...

    async def update_runtime_config(self, pod_cidr: str) -> None: ...


def node_pod_cidrs(node: Obj | None) -> str:
    """The Node's pod CIDRs as CRI wants them: comma-separated, spec.podCIDRs first, else spec.podCIDR."""
    spec = (node or {}).get("spec") or {}
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    return ",".join(cidrs)


async def network_ready(runtime: NetworkRuntime) -> bool:
    status = (await runtime.status()).status
    return any(c.type == NETWORK_READY and c.status for c in status.conditions)


class PodCidrSync:
    """Keeps the runtime's pod CIDR equal to this Node's, and tells `on_applied` when it set one."""

    def __init__(self, api: Any, runtime: NetworkRuntime, node_name: str, *,
                 on_applied: Callable[[str], Awaitable[None]] | None = None, recheck_interval: float = 10.0) -> None:
        self.runtime = runtime
        self.node_name = node_name
        self.on_applied = on_applied
        self.recheck_interval = recheck_interval
        self.informer = Informer(api, "nodes", field_selector=f"metadata.name={node_name}")
        self.informer.add_handler(on_add=self._changed, on_update=lambda _old, _new: self._changed(_new),
                                  on_delete=self._changed)
        self.applied = ""  # the CIDR(s) last handed to the runtime
        self._wake = asyncio.Event()

    def _changed(self, _node: Obj) -> None:
        self._wake.set()

    @property
    def pod_cidr(self) -> str:
        return node_pod_cidrs(self.informer.store.get(self.node_name))

    async def sync_once(self) -> bool:
        """Apply the Node's CIDR when it is new to the runtime or the runtime's network is not ready; True if
        UpdateRuntimeConfig was called."""
        cidr = self.pod_cidr
        if not cidr:
            return False
        if cidr == self.applied and await network_ready(self.runtime):
            return False
        await self.runtime.update_runtime_config(cidr)
        if cidr != self.applied:
            log.info("pod CIDR %s handed to the container runtime", cidr)
        self.applied = cidr
        if self.on_applied is not None:
            await self.on_applied(cidr)
        return True

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.informer.run(), name="own-node-informer")
            await self.informer.wait_synced()
            while True:
                self._wake.clear()
                try:
                    await self.sync_once()
                except CriError as e:  # the runtime may be restarting: the next round retries
                    log.warning("handing the pod CIDR to the runtime failed: %s", e)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.recheck_interval)
