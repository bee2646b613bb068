"""What every handler shares: the registry of resources, the schemas, the metrics and the settings."""

from __future__ import annotations

from dataclasses import dataclass

from apiserver.allocators import ServiceAllocators
from apiserver.config import Config
from apiserver.handlers.namespaces import NamespaceLifecycle
from apiserver.metrics import Metrics
from apiserver.registry import Registry
from apiserver.schema import SchemaRegistry


def load_schemas() -> SchemaRegistry:
    """The Kubernetes 1.32 JSON schemas, parsed once per process."""
    return SchemaRegistry.load()


@dataclass
class ServerState:
    config: Config
    registry: Registry
    metrics: Metrics
    schemas: SchemaRegistry
    namespaces: NamespaceLifecycle
    # ClusterIP/NodePort allocation of Services (handlers/service_allocation.py); None serves Services without.
    allocators: ServiceAllocators | None = None
