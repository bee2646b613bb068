"""What Endpoints and EndpointSlices are made of: the pods a Service selects and their resolved ports.

Shared by both controllers so they agree on which pods back a Service: pods in the Service's namespace
matching its selector, with an IP, not finished; named targetPorts are resolved per pod (a pod without the
named port is left out of that port's set).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokube.api.types import Obj
from controllers.informers import in_namespace
from controllers.labels import map_selector_matches
from controllers.podutil import is_ready, phase


@dataclass(frozen=True)
class PortMapping:
    name: str
    port: int
    protocol: str
    app_protocol: str | None = None


PortsKey = tuple[tuple[str, int, str], ...]


@dataclass
class Backend:
    pod: Obj
    ip: str
    ready: bool
    terminating: bool
    ports: tuple[PortMapping, ...]

    def ports_key(self) -> PortsKey:
        """The resolved (name, port, protocol) set in a stable order: backends sharing it share a subset/slice."""
        return tuple(sorted((p.name, p.port, p.protocol) for p in self.ports))


def resolve_target_port(service_port: dict[str, Any], pod: Obj) -> int | None:
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol", "TCP")
    for container in pod.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return int(port["containerPort"])
    return None


def pod_ip(pod: Obj) -> str:
    return str(pod.get("status", {}).get("podIP") or "")


def backends(service: Obj, pods: list[Obj], *, include_terminating: bool) -> list[Backend]:
    selector = service.get("spec", {}).get("selector")
    publish_not_ready = bool(service.get("spec", {}).get("publishNotReadyAddresses"))
    found: list[Backend] = []
    for pod in pods:
        if not map_selector_matches(selector, pod.get("metadata", {}).get("labels")):
            continue
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        if not pod_ip(pod) or phase(pod) in ("Succeeded", "Failed") or (terminating and not include_terminating):
            continue
        mappings = []
        for sp in service.get("spec", {}).get("ports") or []:
            port = resolve_target_port(sp, pod)
            if port is not None:
                mappings.append(PortMapping(sp.get("name", ""), port, sp.get("protocol", "TCP"),
                                            sp.get("appProtocol")))
        ready = (is_ready(pod) or publish_not_ready) and not terminating
        found.append(Backend(pod, pod_ip(pod), ready, terminating, tuple(mappings)))
    found.sort(key=lambda b: (b.ip, b.pod["metadata"]["name"]))
    return found


def target_ref(pod: Obj) -> dict[str, Any]:
    meta = pod["metadata"]
    return {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta["name"], "uid": meta.get("uid")}


def selects_pod(service: Obj, pod: Obj) -> bool:
    return map_selector_matches(service.get("spec", {}).get("selector"), pod.get("metadata", {}).get("labels"))


def watch_services_and_pods(services: Any, pods: Any, enqueue: Callable[[Obj], None]) -> None:
    """Queue a Service whenever it changes, and every Service selecting a pod whenever that pod changes.

    An updated pod is matched with both its old and its new labels: a relabelled pod leaves one Service and
    joins another, and both must be recomputed.
    """

    def pod_changed(pod: Obj) -> None:
        for service in in_namespace(services, pod["metadata"].get("namespace", "")):
            if selects_pod(service, pod):
                enqueue(service)

    def pod_updated(old: Obj, new: Obj) -> None:
        pod_changed(old)
        pod_changed(new)

    services.add_handler(on_add=enqueue, on_update=lambda _o, new: enqueue(new), on_delete=enqueue)
    pods.add_handler(on_add=pod_changed, on_update=pod_updated, on_delete=pod_changed)
