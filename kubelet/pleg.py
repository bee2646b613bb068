"""The pod lifecycle event generator: relist the runtime every `period` and report pods whose containers or
sandboxes changed (started, exited, appeared, vanished), so their workers sync promptly.

containerd 1.6 does not implement CRI GetContainerEvents; a relist (two List calls, well under 1 ms each) is
cheap enough to run every second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from kubelet import labels as L
from kubelet.cri import CriError, RuntimeClient

log = logging.getLogger(__name__)

DEFAULT_RELIST_PERIOD = 1.0

Snapshot = dict[str, dict[str, int]]  # pod uid -> {container or sandbox id: CRI state}


class Pleg:
    def __init__(self, runtime: RuntimeClient, node_name: str, on_pod_changed: Callable[[str], None], *,
                 period: float = DEFAULT_RELIST_PERIOD) -> None:
        self.runtime = runtime
        self.node_name = node_name
        self.on_pod_changed = on_pod_changed
        self.period = period
        self.last_relist = 0.0
        self._previous: Snapshot = {}

    async def relist(self) -> set[str]:
        """One relist; returns (and reports) the uids whose runtime state changed."""
        selector = {L.MANAGED_BY: self.node_name}
        current: Snapshot = {}
        for s in await self.runtime.list_pod_sandboxes(selector):
            current.setdefault(s.labels.get(L.POD_UID, ""), {})[s.id] = 100 + s.state
        for c in await self.runtime.list_containers(selector):
            current.setdefault(c.labels.get(L.POD_UID, ""), {})[c.id] = c.state
        changed = {uid for uid in current.keys() | self._previous.keys()
                   if current.get(uid) != self._previous.get(uid)}
        self._previous = current
        self.last_relist = time.monotonic()
        for uid in changed:
            self.on_pod_changed(uid)
        return changed

    def known_uids(self) -> set[str]:
        return set(self._previous)

    def healthy(self, threshold: float = 180.0) -> bool:
        return time.monotonic() - self.last_relist < threshold

    async def run(self) -> None:
        while True:
            try:
                await self.relist()
            except CriError as e:
                log.warning("PLEG relist failed: %s", e)
            await asyncio.sleep(self.period)
