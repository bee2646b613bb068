"""`PodInfo`: what the scheduler needs from a pod, parsed once per pod object instead of once per node.

Holds the effective resource request (Kubernetes' rule: max(sum of app containers + restartable init
containers, the largest init container with the sidecars started before it) + pod overhead), the non-zero
request used for scoring (100m CPU / 200Mi memory per container that asks for nothing), host ports, priority,
and the *scheduling signature*: the pod fields that static node checks depend on (node selector, node
affinity, tolerations, node name). Pods of one ReplicaSet share a signature, so their static node checks are
computed once and cached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiokube.api.quantity import int_value, milli_value
from aiokube.api.types import Obj

# Column order of every resource vector in the scheduler (NodeTable arrays use the same order).
RESOURCES = ("cpu", "memory", "ephemeral-storage", "pods")
CPU, MEMORY, EPHEMERAL, PODS = range(4)

# Scoring treats a container without requests as if it asked for this much, so "best effort" pods still
# spread instead of piling onto one node (Kubernetes' DefaultMilliCPURequest / DefaultMemoryRequest).
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024


def _container_requests(container: Obj) -> list[int]:
    requests = (container.get("resources") or {}).get("requests") or {}
    limits = (container.get("resources") or {}).get("limits") or {}
    # A limit without a request means request == limit (the API server's defaulting; repeated for pods
    # created without that defaulting).
    def get(name: str) -> Any:
        return requests.get(name, limits.get(name))
    cpu, mem, eph = get("cpu"), get("memory"), get("ephemeral-storage")
    return [milli_value(cpu) if cpu is not None else 0,
            int_value(mem) if mem is not None else 0,
            int_value(eph) if eph is not None else 0]


def _non_zero(container: Obj) -> list[int]:
    cpu, mem, _ = _container_requests(container)
    return [cpu or DEFAULT_MILLI_CPU, mem or DEFAULT_MEMORY]


def _add(a: list[int], b: list[int]) -> list[int]:
    return [x + y for x, y in zip(a, b, strict=True)]


def _max(a: list[int], b: list[int]) -> list[int]:
    return [max(x, y) for x, y in zip(a, b, strict=True)]


def effective_requests(spec: Obj) -> tuple[list[int], list[int]]:
    """(cpu milli, memory, ephemeral, pods=1) and the non-zero (cpu, memory) request of a pod spec."""
    total = [0, 0, 0]
    non_zero = [0, 0]
    for container in spec.get("containers") or []:
        total = _add(total, _container_requests(container))
        non_zero = _add(non_zero, _non_zero(container))
    sidecars = [0, 0, 0]
    sidecars_nz = [0, 0]
    init_peak = [0, 0, 0]
    init_peak_nz = [0, 0]
    for container in spec.get("initContainers") or []:
        req = _container_requests(container)
        nz = _non_zero(container)
        if container.get("restartPolicy") == "Always":
            # A sidecar keeps running next to the app containers, so it adds to the steady-state sum.
            sidecars = _add(sidecars, req)
            sidecars_nz = _add(sidecars_nz, nz)
            init_peak = _max(init_peak, sidecars)
            init_peak_nz = _max(init_peak_nz, sidecars_nz)
        else:
            init_peak = _max(init_peak, _add(req, sidecars))
            init_peak_nz = _max(init_peak_nz, _add(nz, sidecars_nz))
    total = _max(_add(total, sidecars), init_peak)
    non_zero = _max(_add(non_zero, sidecars_nz), init_peak_nz)
    overhead = spec.get("overhead") or {}
    if overhead:
        extra = _container_requests({"resources": {"requests": overhead}})
        total = _add(total, extra)
        non_zero = _add(non_zero, extra[:2])
    return [*total, 1], non_zero


def host_ports(spec: Obj) -> list[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) of every container port that claims a host port."""
    ports = []
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                ports.append((port.get("hostIP") or "0.0.0.0", port.get("protocol") or "TCP",
                              int(port["hostPort"])))
    return ports


@dataclass
class PodInfo:
    pod: Obj
    key: str
    priority: int
    requests: list[int]
    non_zero: list[int]
    ports: list[tuple[str, str, int]]
    signature: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> Obj:
        return self.pod.get("spec") or {}

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"].get("namespace", "default"))

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def affinity(self) -> Obj:
        return self.spec.get("affinity") or {}

    @property
    def tolerations(self) -> list[Obj]:
        return self.spec.get("tolerations") or []

    @property
    def node_name(self) -> str:
        return str(self.spec.get("nodeName") or "")

    @property
    def is_terminating(self) -> bool:
        return bool(self.pod["metadata"].get("deletionTimestamp"))

    @property
    def has_required_anti_affinity(self) -> bool:
        anti = self.affinity.get("podAntiAffinity") or {}
        return bool(anti.get("requiredDuringSchedulingIgnoredDuringExecution"))


def signature_of(spec: Obj) -> str:
    return json.dumps([spec.get("nodeName") or "", spec.get("nodeSelector") or {},
                       (spec.get("affinity") or {}).get("nodeAffinity") or {},
                       spec.get("tolerations") or []], sort_keys=True, separators=(",", ":"))


def pod_info(pod: Obj, priority: int | None = None) -> PodInfo:
    """Parse a pod; `priority` overrides spec.priority (resolved from its PriorityClass when unset)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    requests, non_zero = effective_requests(spec)
    if priority is None:
        priority = int(spec.get("priority") or 0)
    return PodInfo(pod=pod, key=f"{meta.get('namespace', 'default')}/{meta.get('name', '')}", priority=priority,
                   requests=requests, non_zero=non_zero, ports=host_ports(spec), signature=signature_of(spec),
                   labels=dict(meta.get("labels") or {}))
