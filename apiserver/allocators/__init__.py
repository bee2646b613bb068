"""Allocators of Service ClusterIPs and NodePorts, HA-safe on the storage layer.

Each allocated value is its own storage key, written with create-if-absent, so several API servers on one
etcd never hand out the same IP or port. `ServiceAllocators` handles whole Services (create, update with type
changes, delete); `ServiceIPAllocator` and `NodePortAllocator` handle single values.
"""

from apiserver.allocators.nodeport import DEFAULT_NODE_PORT_RANGE, NodePortAllocator
from apiserver.allocators.service import ServiceAllocation, ServiceAllocators
from apiserver.allocators.serviceip import DEFAULT_SERVICE_CIDR, ServiceIPAllocator, kubernetes_service_ip

__all__ = [
    "DEFAULT_NODE_PORT_RANGE",
    "DEFAULT_SERVICE_CIDR",
    "NodePortAllocator",
    "ServiceAllocation",
    "ServiceAllocators",
    "ServiceIPAllocator",
    "kubernetes_service_ip",
]
