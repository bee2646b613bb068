"""Builders of Node and Pod objects for the scheduler's tests."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj


def make_node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: int = 110,
              labels: dict[str, str] | None = None, taints: list[Obj] | None = None,
              unschedulable: bool = False) -> Obj:
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    allocatable = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": spec, "status": {"allocatable": allocatable, "capacity": allocatable}}


def make_pod(name: str, *, cpu: str | None = None, memory: str | None = None, namespace: str = "default",
             labels: dict[str, str] | None = None, node: str | None = None, priority: int | None = None,
             **spec_extra: Any) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: Obj = {"name": "c", "image": "busybox"}
    if requests:
        container["resources"] = {"requests": requests}
    ports = spec_extra.pop("host_ports", None)
    if ports:
        container["ports"] = [{"containerPort": p, "hostPort": p} for p in ports]
    spec: Obj = {"containers": [container], **spec_extra}
    if node:
        spec["nodeName"] = node
    if priority is not None:
        spec["priority"] = priority
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}, "uid": f"uid-{name}"},
            "spec": spec, "status": {"phase": "Pending"}}
