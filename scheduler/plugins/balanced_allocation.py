"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be used in equal proportion after
placing the pod (score = (1 - |cpuFraction - memFraction| / 2) * 100, fractions capped at 1)."""

from __future__ import annotations

import numpy as np

from scheduler.cache import NodeTable
from scheduler.framework import MAX_NODE_SCORE
from scheduler.podinfo import CPU, MEMORY, PodInfo

NAME = "NodeResourcesBalancedAllocation"


class BalancedAllocation:
    name = NAME

    def score_batch(self, pod: PodInfo, table: NodeTable, rows: np.ndarray) -> np.ndarray:
        alloc = table.allocatable[rows][:, [CPU, MEMORY]]
        # Kubernetes 1.32 uses the pods' real requests here (not the non-zero defaults used by LeastAllocated).
        used = table.requested[rows][:, [CPU, MEMORY]] + np.asarray(pod.requests[:2], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            fractions = np.where(alloc > 0, np.minimum(used / alloc, 1.0), 1.0)
        deviation = np.abs(fractions[:, 0] - fractions[:, 1]) / 2
        return np.floor((1 - deviation) * MAX_NODE_SCORE)


def new() -> BalancedAllocation:
    return BalancedAllocation()
