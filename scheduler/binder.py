"""The asynchronous binding cycle: POST pods/{name}/binding with a core/v1 Binding, many pods at once.

The scheduling cycle has already *assumed* the pod on its node, so it moves on to the next pod immediately;
binding runs concurrently (up to `concurrency` requests in flight). The outcome is reported back through the
callbacks: success (the informer's event will confirm the assumption), or failure (the scheduler forgets the
assumption and requeues the pod with backoff).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj

if TYPE_CHECKING:
    from aiokube.client import ApiClient

log = logging.getLogger(__name__)

# Bindings are latency-bound (read + compare-and-swap in etcd behind the API server): 8 in flight capped the
# benchmark near 100 pods/s, 32 reached ~250 pods/s at 100 nodes; more brought nothing on 2 cores.
DEFAULT_CONCURRENCY = 32


def binding_for(pod: Obj, node_name: str) -> Obj:
    meta = pod["metadata"]
    binding_meta: Obj = {"name": meta["name"], "namespace": meta.get("namespace", "default")}
    if meta.get("uid"):
        binding_meta["uid"] = meta["uid"]
    return {"apiVersion": "v1", "kind": "Binding", "metadata": binding_meta,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}


class Binder:
    def __init__(self, client: ApiClient, *, on_bound: Callable[[Obj, str], None],
                 on_failed: Callable[[Obj, str, Exception], None], concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.client = client
        self.on_bound = on_bound
        self.on_failed = on_failed
        self._limit = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, pod: Obj, node_name: str) -> None:
        """Bind in the background; the binder owns the task until it finishes or `aclose` cancels it."""
        task = asyncio.create_task(self._bind(pod, node_name), name=f"bind {pod['metadata']['name']}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def _bind(self, pod: Obj, node_name: str) -> None:
        meta = pod["metadata"]
        try:
            async with self._limit:
                await self.client.create_subresource("pods", meta["name"], "binding", binding_for(pod, node_name),
                                                     namespace=meta.get("namespace", "default"))
        except asyncio.CancelledError:
            raise
        except (ApiError, OSError, Exception) as exc:  # any failure must undo the assumption
            log.info("binding %s/%s to %s failed: %s", meta.get("namespace"), meta["name"], node_name, exc)
            self.on_failed(pod, node_name, exc)
            return
        self.on_bound(pod, node_name)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
