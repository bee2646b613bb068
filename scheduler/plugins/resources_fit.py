"""NodeResourcesFit: the pod's effective requests must fit in allocatable minus what the node's pods (assumed
ones included) request; scores by LeastAllocated (emptier nodes win), cpu and memory weighted equally.

Only resources the pod asks for are checked (a pod requesting no CPU fits a full node), plus the pod count.
Pods nominated to a node by preemption with priority >= this pod's are counted as already there
(`state["nominated_requests"]`: row -> request vector), so a lower-priority pod cannot steal their room.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scheduler.cache import NodeInfo, NodeTable
from scheduler.framework import MAX_NODE_SCORE, SUCCESS, CycleState, Status
from scheduler.podinfo import CPU, MEMORY, PODS, RESOURCES, PodInfo

NAME = "NodeResourcesFit"
TOO_MANY_PODS = "Too many pods"
NOMINATED_KEY = "nominated_requests"


def insufficient(resource: str) -> str:
    return f"Insufficient {resource}"


def fit_reasons(pod: PodInfo, allocatable: list[Any], requested: list[Any]) -> list[str]:
    reasons = []
    if requested[PODS] + 1 > allocatable[PODS]:
        reasons.append(TOO_MANY_PODS)
    for column in range(PODS):
        want = pod.requests[column]
        if want > 0 and want > allocatable[column] - requested[column]:
            reasons.append(insufficient(RESOURCES[column]))
    return reasons


class NodeResourcesFit:
    name = NAME

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        requested = node.requested()
        extra = state.get(NOMINATED_KEY, {}).get(node.row)
        if extra is not None:
            requested = [a + b for a, b in zip(requested, extra, strict=True)]
        reasons = fit_reasons(pod, node.allocatable, requested)
        return Status.unschedulable(*reasons, plugin=NAME) if reasons else SUCCESS

    def filter_batch(self, state: CycleState, pod: PodInfo, table: NodeTable) -> np.ndarray:
        n = table.size
        free = table.allocatable[:n] - table.requested[:n]
        nominated: dict[int, list[int]] = state.get(NOMINATED_KEY, {})
        if nominated:
            free = free.copy()
            for row, extra in nominated.items():
                free[row] -= extra
        wanted = np.asarray(pod.requests, dtype=np.float64)
        checked = wanted > 0  # the pods column is always 1, so always checked
        return np.all(free[:, checked] >= wanted[checked], axis=1)

    def score_batch(self, pod: PodInfo, table: NodeTable, rows: np.ndarray) -> np.ndarray:
        """LeastAllocated: mean over cpu/memory of (allocatable - requested) / allocatable, in 0..100."""
        alloc = table.allocatable[rows][:, [CPU, MEMORY]]
        used = table.non_zero[rows] + np.asarray(pod.non_zero, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_resource = np.where((alloc > 0) & (used <= alloc), (alloc - used) * MAX_NODE_SCORE / alloc, 0.0)
        return np.floor(np.floor(per_resource).sum(axis=1) / 2)


def new() -> NodeResourcesFit:
    return NodeResourcesFit()
