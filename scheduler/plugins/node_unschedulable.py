"""NodeUnschedulable: cordoned nodes (spec.unschedulable) take no new pods unless the pod tolerates the
`node.kubernetes.io/unschedulable:NoSchedule` taint (as DaemonSet pods do)."""

from __future__ import annotations

from aiokube.api.types import Obj
from scheduler.cache import NodeInfo
from scheduler.framework import SUCCESS, CycleState, Status
from scheduler.plugins.selectors import tolerates
from scheduler.podinfo import PodInfo

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable:
    name = NAME

    def filter_static(self, pod: PodInfo, node: Obj) -> Status:
        if not (node.get("spec") or {}).get("unschedulable"):
            return SUCCESS
        if any(tolerates(t, UNSCHEDULABLE_TAINT) for t in pod.tolerations):
            return SUCCESS
        return Status.unresolvable(REASON, plugin=NAME)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return self.filter_static(pod, node.node or {})


def new() -> NodeUnschedulable:
    return NodeUnschedulable()
