"""What Endpoints and EndpointSlices are made of: the pods a Service selects and their resolved ports.

Shared by both controllers so they agree on which pods back a Service: pods in the Service's namespace
matching its selector, with an IP, not finished; named targetPorts are resolved per pod (a pod without the
named port is left out of that port's set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokube.api.types import Obj
from controllers.labels import map_selector_matches
from controllers.podutil import is_ready, phase


@dataclass(frozen=True)
class PortMapping:
    name: str
    port: int
    protocol: str
    app_protocol: str | None = None


@dataclass
class Backend:
    pod: Obj
    ip: str
    ready: bool
    terminating: bool
    ports: tuple[PortMapping, ...]


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
