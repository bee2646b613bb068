"""The scheduler cache: every node with the pods on it, including *assumed* pods not yet confirmed bound.

Two views of the same data, kept in step on every change:

- `NodeInfo` per node (pods, used host ports, the node object) for the per-node plugins;
- `NodeTable`, one row per node of numpy arrays (allocatable, requested, non-zero requested) so resource fit
  and resource scores are computed for all nodes with a few vector operations instead of a Python loop.

A pod is *assumed* the moment the scheduling cycle picks its node, so the next pod already sees the
resources as taken while the binding is still in flight. The informer's event for the bound pod confirms the
assumption; a failed binding `forget`s it. Rows also carry a `static_version`, bumped whenever a node's
labels, taints, unschedulable flag or existence change, which invalidates cached static-filter results for
that row only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from aiokube.api.types import Obj
from scheduler.podinfo import RESOURCES, PodInfo

_INITIAL_ROWS = 64


def node_allocatable(node: Obj) -> list[int]:
    from aiokube.api.quantity import int_value, milli_value

    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    return [milli_value(alloc.get("cpu", 0)), int_value(alloc.get("memory", 0)),
            int_value(alloc.get("ephemeral-storage", 0)), int_value(alloc.get("pods", 0))]


def node_static_key(node: Obj) -> str:
    """The node fields static filters and static scores read; a change bumps the row's static version."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    return json.dumps([meta.get("name"), meta.get("labels") or {}, spec.get("taints") or [],
                       bool(spec.get("unschedulable"))], sort_keys=True)


@dataclass
class NodeInfo:
    name: str
    row: int
    node: Obj | None = None
    pods: dict[str, PodInfo] = field(default_factory=dict)
    used_ports: dict[tuple[str, str, int], int] = field(default_factory=dict)
    static_key: str = ""
    allocatable: list[int] = field(default_factory=lambda: [0] * len(RESOURCES))

    def requested(self) -> list[int]:
        """Sum of the pods' requests (slow path: diagnosis and preemption; the hot path uses the table)."""
        total = [0] * len(RESOURCES)
        for pod in self.pods.values():
            total = [a + b for a, b in zip(total, pod.requests, strict=True)]
        return total

    @property
    def labels(self) -> dict[str, str]:
        return ((self.node or {}).get("metadata") or {}).get("labels") or {}

    @property
    def taints(self) -> list[Obj]:
        return ((self.node or {}).get("spec") or {}).get("taints") or []


class NodeTable:
    """Column arrays indexed by row; rows of deleted nodes are recycled."""

    def __init__(self) -> None:
        self.capacity = _INITIAL_ROWS
        self.size = 0  # rows in use (including free-listed ones, whose `alive` is False)
        self.allocatable = np.zeros((self.capacity, len(RESOURCES)), dtype=np.float64)
        self.requested = np.zeros((self.capacity, len(RESOURCES)), dtype=np.float64)
        self.non_zero = np.zeros((self.capacity, 2), dtype=np.float64)
        self.alive = np.zeros(self.capacity, dtype=bool)
        self.static_version = np.zeros(self.capacity, dtype=np.int64)
        self.names: list[str] = []

    def _grow(self) -> None:
        self.capacity *= 2
        for attr in ("allocatable", "requested", "non_zero", "alive", "static_version"):
            old = getattr(self, attr)
            new = np.zeros((self.capacity, *old.shape[1:]), dtype=old.dtype)
            new[: old.shape[0]] = old
            setattr(self, attr, new)

    def new_row(self, name: str) -> int:
        if self.size == self.capacity:
            self._grow()
        row = self.size
        self.size += 1
        self.names.append(name)
        return row


class SchedulerCache:
    def __init__(self) -> None:
        self.table = NodeTable()
        self.nodes: dict[str, NodeInfo] = {}
        self._free_rows: list[int] = []
        self._pod_node: dict[str, str] = {}  # pod key -> node name, for every pod in the cache
        self.assumed: set[str] = set()
        self.node_count = 0  # nodes with an object (placeholders for pods on unknown nodes excluded)
        self.pods_with_anti_affinity: dict[str, PodInfo] = {}
        self.pods_with_affinity: dict[str, PodInfo] = {}

    # ---- nodes ----------------------------------------------------------------------------------------
    def _info_for(self, name: str) -> NodeInfo:
        info = self.nodes.get(name)
        if info is None:
            row = self._free_rows.pop() if self._free_rows else self.table.new_row(name)
            self.table.names[row] = name
            info = NodeInfo(name=name, row=row)
            self.nodes[name] = info
        return info

    def set_node(self, node: Obj) -> NodeInfo:
        name = node["metadata"]["name"]
        info = self._info_for(name)
        if info.node is None:
            self.node_count += 1
        info.node = node
        t = self.table
        info.allocatable = node_allocatable(node)
        t.allocatable[info.row] = info.allocatable
        t.alive[info.row] = True
        key = node_static_key(node)
        if key != info.static_key:
            info.static_key = key
            t.static_version[info.row] += 1
        return info

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None or info.node is None:
            return
        info.node = None
        info.static_key = ""
        self.node_count -= 1
        t = self.table
        t.alive[info.row] = False
        t.allocatable[info.row] = 0
        t.static_version[info.row] += 1
        self._maybe_release(info)

    def _maybe_release(self, info: NodeInfo) -> None:
        # A row stays while pods still point at the node (their deletions will come); then it is recycled.
        if info.node is None and not info.pods:
            del self.nodes[info.name]
            t = self.table
            t.requested[info.row] = 0
            t.non_zero[info.row] = 0
            t.static_version[info.row] += 1
            self._free_rows.append(info.row)

    def live_nodes(self) -> Iterator[NodeInfo]:
        return (info for info in self.nodes.values() if info.node is not None)

    def node_by_row(self, row: int) -> NodeInfo:
        return self.nodes[self.table.names[row]]

    # ---- pods -----------------------------------------------------------------------------------------
    def _add_to_node(self, pod: PodInfo, node_name: str) -> None:
        info = self._info_for(node_name)
        info.pods[pod.key] = pod
        self._pod_node[pod.key] = node_name
        self.table.requested[info.row] += pod.requests
        self.table.non_zero[info.row] += pod.non_zero
        for port in pod.ports:
            info.used_ports[port] = info.used_ports.get(port, 0) + 1
        if pod.has_required_anti_affinity:
            self.pods_with_anti_affinity[pod.key] = pod
        if pod.affinity.get("podAffinity") or pod.affinity.get("podAntiAffinity"):
            self.pods_with_affinity[pod.key] = pod

    def _remove_from_node(self, key: str) -> PodInfo | None:
        node_name = self._pod_node.pop(key, None)
        if node_name is None:
            return None
        info = self.nodes[node_name]
        pod = info.pods.pop(key)
        self.table.requested[info.row] -= pod.requests
        self.table.non_zero[info.row] -= pod.non_zero
        for port in pod.ports:
            left = info.used_ports.get(port, 0) - 1
            if left > 0:
                info.used_ports[port] = left
            else:
                info.used_ports.pop(port, None)
        self.pods_with_anti_affinity.pop(key, None)
        self.pods_with_affinity.pop(key, None)
        self._maybe_release(info)
        return pod

    def assume(self, pod: PodInfo, node_name: str) -> None:
        """Count the pod against `node_name` before its binding is confirmed."""
        self._remove_from_node(pod.key)
        self._add_to_node(pod, node_name)
        self.assumed.add(pod.key)

    def forget(self, key: str) -> None:
        """Undo an assumption (binding failed)."""
        if key in self.assumed:
            self.assumed.discard(key)
            self._remove_from_node(key)

    def add_or_update_pod(self, pod: PodInfo) -> None:
        """A pod the informer shows as bound; replaces any assumed copy of it."""
        self.assumed.discard(pod.key)
        self._remove_from_node(pod.key)
        self._add_to_node(pod, pod.node_name)

    def remove_pod(self, key: str) -> PodInfo | None:
        self.assumed.discard(key)
        return self._remove_from_node(key)

    def pod_info_of(self, key: str) -> PodInfo | None:
        node = self._pod_node.get(key)
        return None if node is None else self.nodes[node].pods.get(key)

    def node_of(self, key: str) -> str | None:
        return self._pod_node.get(key)

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed
