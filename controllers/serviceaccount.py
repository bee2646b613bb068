"""ServiceAccount controller: every active namespace has a `default` ServiceAccount (recreated if deleted)."""

from __future__ import annotations

from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.client import Result

DEFAULT_NAME = "default"


class ServiceAccountReconciler:
    name = "serviceaccount"

    def __init__(self, *, client: Any, informers: Any) -> None:
        self.client = client
        self.namespaces = informers.get("namespaces")
        self.serviceaccounts = informers.get("serviceaccounts")
        self.queue: Any = None

    @property
    def informers(self) -> list[Any]:
        return [self.namespaces, self.serviceaccounts]

    def watch(self, queue: Any) -> None:
        self.queue = queue
        self.namespaces.add_handler(on_add=self._enqueue_ns, on_update=lambda _o, new: self._enqueue_ns(new))
        self.serviceaccounts.add_handler(on_delete=self._sa_deleted)

    def _enqueue_ns(self, ns: Obj) -> None:
        self.queue.add(ns["metadata"]["name"])

    def _sa_deleted(self, sa: Obj) -> None:
        if sa["metadata"].get("name") == DEFAULT_NAME:
            self.queue.add(sa["metadata"].get("namespace", ""))

    async def reconcile(self, key: str) -> Result:
        ns = self.namespaces.store.get(key)
        terminating = ns is not None and (ns.get("status") or {}).get("phase") == "Terminating"
        if ns is None or ns["metadata"].get("deletionTimestamp") or terminating:
            return Result()
        if self.serviceaccounts.store.get(f"{key}/{DEFAULT_NAME}") is not None:
            return Result()
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT_NAME, "namespace": key}}
        try:
            await self.client.create("serviceaccounts", body, namespace=key)
        except ApiError as err:
            # AlreadyExists: the cache was behind; Forbidden/NotFound: the namespace is going away.
            if err.code not in (409, 403, 404):
                raise
        return Result()
