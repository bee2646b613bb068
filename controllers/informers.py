"""SharedInformers: one Informer per resource for the whole controller-manager.

Every controller asks the factory for the informers it reads (`informers.get("pods")`); they all share one
list+watch and one cache per resource. Indexes are registered once by name, so two controllers asking for the
same index share it. The manager runs them all (`run()`) and controllers wait for their sync.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from aiokube.api.types import Obj
from aiokube.client import Informer

NAMESPACE_INDEX = "namespace"
UID_INDEX = "uid"
OWNER_UID_INDEX = "owner-uid"
NODE_INDEX = "node"


def _namespace_of(obj: Obj) -> list[str]:
    return [obj.get("metadata", {}).get("namespace") or ""]


def _uid_of(obj: Obj) -> list[str]:
    return [obj.get("metadata", {}).get("uid") or ""]


def _owner_uids(obj: Obj) -> list[str]:
    return [str(ref.get("uid", "")) for ref in obj.get("metadata", {}).get("ownerReferences") or []]


def _node_of(obj: Obj) -> list[str]:
    node = obj.get("spec", {}).get("nodeName")
    return [node] if node else []


# Indexes every informer carries: listing one namespace, finding an owner by uid, and dependents by owner
# are what nearly every controller does, and an index keeps them O(result) instead of O(cache).
_COMMON_INDEXES: dict[str, Callable[[Obj], Iterable[str]]] = {
    NAMESPACE_INDEX: _namespace_of,
    UID_INDEX: _uid_of,
    OWNER_UID_INDEX: _owner_uids,
}


class SharedInformers:
    def __init__(self, client: Any, *, resync_period: float | None = None,
                 informer_factory: Callable[..., Any] = Informer) -> None:
        self._client = client
        self._resync_period = resync_period
        self._factory = informer_factory
        self._informers: dict[str, Any] = {}
        self._indexes: dict[str, set[str]] = {}
        self._started = False

    def get(self, resource: str) -> Any:
        """The shared Informer for `resource` (all namespaces), created on first use."""
        informer = self._informers.get(resource)
        if informer is None:
            if self._started:
                raise RuntimeError(f"informer for {resource} requested after the informers started")
            informer = self._factory(self._client, resource, resync_period=self._resync_period)
            self._informers[resource] = informer
            self._indexes[resource] = set()
            for name, func in _COMMON_INDEXES.items():
                self.add_index(resource, name, func)
            if resource == "pods":
                self.add_index(resource, NODE_INDEX, _node_of)
        return informer

    def add_index(self, resource: str, name: str, func: Callable[[Obj], Iterable[str]]) -> None:
        informer = self.get(resource)
        if name in self._indexes[resource]:
            return
        informer.add_index(name, func)
        self._indexes[resource].add(name)

    @property
    def resources(self) -> list[str]:
        return list(self._informers)

    async def run(self) -> None:
        """Run every informer until cancelled."""
        self._started = True
        async with asyncio.TaskGroup() as group:
            for informer in self._informers.values():
                group.create_task(informer.run())

    async def wait_synced(self) -> None:
        await asyncio.gather(*(inf.wait_synced() for inf in self._informers.values()))


def in_namespace(informer: Any, namespace: str) -> list[Obj]:
    return list(informer.store.by_index(NAMESPACE_INDEX, namespace))


def by_uid(informer: Any, uid: str) -> Obj | None:
    found = informer.store.by_index(UID_INDEX, uid)
    return found[0] if found else None


def dependents_of(informer: Any, owner_uid: str) -> list[Obj]:
    return list(informer.store.by_index(OWNER_UID_INDEX, owner_uid))
