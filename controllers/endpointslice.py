"""EndpointSlice controller: the discovery.k8s.io/v1 slices of each selector Service.

One slice per distinct resolved port set (named targetPorts can differ between pods), at most 100 endpoints
each, labelled `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`, owned by the Service
(so the garbage collector removes them with it). Endpoints carry conditions ready/serving/terminating,
nodeName and targetRef. A Service without backends keeps one empty placeholder slice, as Kubernetes does.
"""

from __future__ import annotations

from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.client import Result
from controllers.endpoints_util import Backend, PortsKey, backends, target_ref, watch_services_and_pods
from controllers.informers import in_namespace
from controllers.ownerrefs import controller_ref_for, object_key, split_key
from controllers.podutil import is_ready

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100


def endpoint_of(backend: Backend, publish_not_ready: bool) -> dict[str, Any]:
    serving = is_ready(backend.pod) or publish_not_ready
    endpoint: dict[str, Any] = {
        "addresses": [backend.ip],
        "conditions": {"ready": serving and not backend.terminating, "serving": serving,
                       "terminating": backend.terminating},
        "targetRef": target_ref(backend.pod),
    }
    node = backend.pod.get("spec", {}).get("nodeName")
    if node:
        endpoint["nodeName"] = node
    return endpoint


def ports_of(key: PortsKey) -> list[dict[str, Any]]:
    return [{"name": n, "port": p, "protocol": proto} for n, p, proto in key]


def desired_slices(service: Obj, pods: list[Obj]) -> list[tuple[PortsKey, list[dict[str, Any]]]]:
    """(ports, endpoints) per slice wanted, in a stable order."""
    publish = bool(service.get("spec", {}).get("publishNotReadyAddresses"))
    groups: dict[PortsKey, list[dict[str, Any]]] = {}
    for backend in backends(service, pods, include_terminating=True):
        groups.setdefault(backend.ports_key(), []).append(endpoint_of(backend, publish))
    wanted: list[tuple[PortsKey, list[dict[str, Any]]]] = []
    for key in sorted(groups):
        endpoints = groups[key]
        for start in range(0, len(endpoints), MAX_ENDPOINTS_PER_SLICE):
            wanted.append((key, endpoints[start:start + MAX_ENDPOINTS_PER_SLICE]))
    return wanted or [((), [])]


def slice_ports_key(slice_: Obj) -> PortsKey:
    return tuple(sorted((p.get("name", ""), int(p.get("port", 0)), p.get("protocol", "TCP"))
                        for p in slice_.get("ports") or []))


class EndpointSliceReconciler:
    name = "endpointslice"

    def __init__(self, *, client: Any, informers: Any) -> None:
        self.client = client
        self.services = informers.get("services")
        self.pods = informers.get("pods")
        self.slices = informers.get("endpointslices")
        informers.add_index("endpointslices", SERVICE_NAME_LABEL, self._service_of)
        self.queue: Any = None

    @staticmethod
    def _service_of(slice_: Obj) -> list[str]:
        labels = slice_.get("metadata", {}).get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != CONTROLLER_NAME or SERVICE_NAME_LABEL not in labels:
            return []
        return [f"{slice_['metadata'].get('namespace')}/{labels[SERVICE_NAME_LABEL]}"]

    @property
    def informers(self) -> list[Any]:
        return [self.services, self.pods, self.slices]

    def watch(self, queue: Any) -> None:
        self.queue = queue
        watch_services_and_pods(self.services, self.pods, self._enqueue)
        self.slices.add_handler(on_update=lambda _o, new: self._slice_changed(new), on_delete=self._slice_changed)

    def _enqueue(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    def _slice_changed(self, slice_: Obj) -> None:
        for key in self._service_of(slice_):
            self.queue.add(key)

    async def reconcile(self, key: str) -> Result:
        namespace, _ = split_key(key)
        service = self.services.store.get(key)
        existing = sorted(self.slices.store.by_index(SERVICE_NAME_LABEL, key), key=lambda s: s["metadata"]["name"])
        if service is None or not service.get("spec", {}).get("selector"):
            for slice_ in existing:
                await self._delete(slice_)
            return Result()
        wanted = desired_slices(service, in_namespace(self.pods, namespace or ""))
        unused = list(existing)
        for ports, endpoints in wanted:
            match = next((s for s in unused if slice_ports_key(s) == ports), None)
            if match is None:
                await self._create(service, ports, endpoints)
                continue
            unused.remove(match)
            if (match.get("endpoints") or []) != endpoints or slice_ports_key(match) != ports:
                await self.client.update("endpointslices", {**match, "endpoints": endpoints,
                                                            "ports": ports_of(ports)})
        for slice_ in unused:
            await self._delete(slice_)
        return Result()

    async def _create(self, service: Obj, ports: PortsKey, endpoints: list[dict[str, Any]]) -> None:
        meta = service["metadata"]
        labels = {**(meta.get("labels") or {}), SERVICE_NAME_LABEL: meta["name"], MANAGED_BY_LABEL: CONTROLLER_NAME}
        body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"], "labels": labels,
                             "ownerReferences": [controller_ref_for(service)]},
                "addressType": "IPv4", "endpoints": endpoints, "ports": ports_of(ports)}
        await self.client.create("endpointslices", body, namespace=meta["namespace"])

    async def _delete(self, slice_: Obj) -> None:
        try:
            await self.client.delete("endpointslices", slice_["metadata"]["name"],
                                     namespace=slice_["metadata"]["namespace"])
        except ApiError as err:
            if err.code != 404:
                raise
