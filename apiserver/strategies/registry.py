"""`strategy_for(info)`: the Strategy of a resource, built once per resource.

Kinds with rules of their own map to their class here; any other resource gets the generic `Strategy`.
"""

from __future__ import annotations

from aiokube.api.resources import ResourceInfo
from apiserver.strategies.base import Strategy


def _classes() -> dict[tuple[str, str], type[Strategy]]:
    # Imported lazily so importing the registry stays cheap and free of import cycles.
    from apiserver.strategies.certificates import CertificateSigningRequestStrategy
    from apiserver.strategies.configmaps import ConfigMapStrategy
    from apiserver.strategies.cronjobs import CronJobStrategy
    from apiserver.strategies.daemonsets import DaemonSetStrategy
    from apiserver.strategies.deployments import DeploymentStrategy
    from apiserver.strategies.endpoints import EndpointsStrategy
    from apiserver.strategies.endpointslices import EndpointSliceStrategy
    from apiserver.strategies.events import EventStrategy
    from apiserver.strategies.jobs import JobStrategy
    from apiserver.strategies.leases import LeaseStrategy
    from apiserver.strategies.namespaces import NamespaceStrategy
    from apiserver.strategies.nodes import NodeStrategy
    from apiserver.strategies.pods import PodStrategy
    from apiserver.strategies.priorityclasses import PriorityClassStrategy
    from apiserver.strategies.rbac import RoleBindingStrategy, RoleStrategy
    from apiserver.strategies.replicasets import ReplicaSetStrategy
    from apiserver.strategies.secrets import SecretStrategy
    from apiserver.strategies.serviceaccounts import ServiceAccountStrategy
    from apiserver.strategies.services import ServiceStrategy
    from apiserver.strategies.statefulsets import StatefulSetStrategy

    return {
        ("", "Pod"): PodStrategy,
        ("", "Node"): NodeStrategy,
        ("", "Namespace"): NamespaceStrategy,
        ("", "Service"): ServiceStrategy,
        ("", "Endpoints"): EndpointsStrategy,
        ("", "ConfigMap"): ConfigMapStrategy,
        ("", "Secret"): SecretStrategy,
        ("", "Event"): EventStrategy,
        ("", "ServiceAccount"): ServiceAccountStrategy,
        ("apps", "Deployment"): DeploymentStrategy,
        ("apps", "ReplicaSet"): ReplicaSetStrategy,
        ("apps", "DaemonSet"): DaemonSetStrategy,
        ("apps", "StatefulSet"): StatefulSetStrategy,
        ("batch", "Job"): JobStrategy,
        ("batch", "CronJob"): CronJobStrategy,
        ("coordination.k8s.io", "Lease"): LeaseStrategy,
        ("discovery.k8s.io", "EndpointSlice"): EndpointSliceStrategy,
        ("scheduling.k8s.io", "PriorityClass"): PriorityClassStrategy,
        ("rbac.authorization.k8s.io", "Role"): RoleStrategy,
        ("rbac.authorization.k8s.io", "ClusterRole"): RoleStrategy,
        ("rbac.authorization.k8s.io", "RoleBinding"): RoleBindingStrategy,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"): RoleBindingStrategy,
        ("certificates.k8s.io", "CertificateSigningRequest"): CertificateSigningRequestStrategy,
    }


# ResourceInfo holds a dict, so it cannot key a cache itself; its group/version/plural identify it.
_BY_RESOURCE: dict[tuple[str, str, str], Strategy] = {}


def strategy_for(info: ResourceInfo) -> Strategy:
    """The Strategy for a resource; the generic `Strategy` when the kind has no rules of its own."""
    key = (info.group, info.version, info.plural)
    strategy = _BY_RESOURCE.get(key)
    if strategy is None:
        cls = _classes().get((info.group, info.kind), Strategy)
        strategy = _BY_RESOURCE[key] = cls(info)
    return strategy
