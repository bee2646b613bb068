"""Endpoints controller: one Endpoints object per selector Service, listing its ready and not-ready pods.

Addresses are grouped into subsets by identical port sets (Kubernetes' RepackSubsets); each address carries
nodeName and a targetRef to its pod. Terminating pods are left out. Services without a selector are left
alone (their Endpoints are user-managed); the Endpoints of a deleted Service are deleted.
"""

from __future__ import annotations

from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.client import Result
from controllers.endpoints_util import backends, target_ref, watch_services_and_pods
from controllers.informers import in_namespace
from controllers.ownerrefs import object_key, split_key


def build_subsets(service: Obj, pods: list[Obj]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], dict[str, list[dict[str, Any]]]] = {}
    for backend in backends(service, pods, include_terminating=False):
        if not backend.ports and service.get("spec", {}).get("ports"):
            continue  # no port of the service resolves on this pod
        address: dict[str, Any] = {"ip": backend.ip, "targetRef": target_ref(backend.pod)}
        node = backend.pod.get("spec", {}).get("nodeName")
        if node:
            address["nodeName"] = node
        group = groups.setdefault(backend.ports_key(), {"addresses": [], "notReadyAddresses": []})
        group["addresses" if backend.ready else "notReadyAddresses"].append(address)
    subsets = []
    for ports, group in sorted(groups.items()):
        subset: dict[str, Any] = {}
        for field in ("addresses", "notReadyAddresses"):
            if group[field]:
                subset[field] = sorted(group[field], key=lambda a: a["ip"])
        subset["ports"] = [{"name": n, "port": p, "protocol": proto} if n else {"port": p, "protocol": proto}
                           for n, p, proto in ports]
        subsets.append(subset)
    return subsets


class EndpointsReconciler:
    name = "endpoints"

    def __init__(self, *, client: Any, informers: Any) -> None:
        self.client = client
        self.services = informers.get("services")
        self.pods = informers.get("pods")
        self.endpoints = informers.get("endpoints")
        self.queue: Any = None

    @property
    def informers(self) -> list[Any]:
        return [self.services, self.pods, self.endpoints]

    def watch(self, queue: Any) -> None:
        self.queue = queue
        watch_services_and_pods(self.services, self.pods, self._enqueue)
        self.endpoints.add_handler(on_update=lambda _o, new: self._enqueue(new), on_delete=self._enqueue)

    def _enqueue(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    async def reconcile(self, key: str) -> Result:
        namespace, name = split_key(key)
        service = self.services.store.get(key)
        current = self.endpoints.store.get(key)
        if service is None:
            if current is not None:
                try:
                    await self.client.delete("endpoints", name, namespace=namespace)
                except ApiError as err:
                    if err.code != 404:
                        raise
            return Result()
        if not service.get("spec", {}).get("selector"):
            return Result()
        subsets = build_subsets(service, in_namespace(self.pods, namespace or ""))
        labels = dict(service["metadata"].get("labels") or {})
        if current is None:
            body = {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": namespace, "labels": labels}, "subsets": subsets}
            try:
                await self.client.create("endpoints", body, namespace=namespace)
            except ApiError as err:
                if err.code != 409:
                    raise
                raise RuntimeError("endpoints appeared meanwhile; retrying with the fresh copy") from err
            return Result()
        if (current.get("subsets") or []) == subsets and (current["metadata"].get("labels") or {}) == labels:
            return Result()
        updated = {**current, "metadata": {**current["metadata"], "labels": labels}, "subsets": subsets}
        await self.client.update("endpoints", updated)  # 409 on a stale cache: retried from fresh state
        return Result()
