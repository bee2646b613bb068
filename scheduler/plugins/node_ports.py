"""NodePorts: a host port (protocol, port) can be claimed once per node; 0.0.0.0 conflicts with every IP."""

from __future__ import annotations

from collections.abc import Collection

from scheduler.cache import NodeInfo
from scheduler.framework import SKIP, SUCCESS, CycleState, Status
from scheduler.podinfo import PodInfo

NAME = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"
ANY_IP = "0.0.0.0"


def conflicts(wanted: tuple[str, str, int], used: tuple[str, str, int]) -> bool:
    ip, protocol, port = wanted
    used_ip, used_protocol, used_port = used
    if port != used_port or protocol != used_protocol:
        return False
    return ip == used_ip or ANY_IP in (ip, used_ip)


class NodePorts:
    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]) -> Status:
        return SUCCESS if pod.ports else SKIP

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        for wanted in pod.ports:
            if any(conflicts(wanted, used) for used in node.used_ports):
                return Status.unschedulable(REASON, plugin=NAME)
        return SUCCESS


def new() -> NodePorts:
    return NodePorts()
