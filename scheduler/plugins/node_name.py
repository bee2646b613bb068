"""NodeName: a pod that names its node (spec.nodeName) fits only there."""

from __future__ import annotations

from aiokube.api.types import Obj
from scheduler.cache import NodeInfo
from scheduler.framework import SUCCESS, CycleState, Status
from scheduler.podinfo import PodInfo

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"


class NodeName:
    name = NAME

    def filter_static(self, pod: PodInfo, node: Obj) -> Status:
        if not pod.node_name or pod.node_name == node["metadata"]["name"]:
            return SUCCESS
        return Status.unresolvable(REASON, plugin=NAME)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return self.filter_static(pod, node.node or {"metadata": {"name": node.name}})


def new() -> NodeName:
    return NodeName()
