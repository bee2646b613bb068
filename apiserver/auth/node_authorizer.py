"""The Node authorizer (Kubernetes' authorization mode "Node"): a node credential (`system:node:<name>` in
`system:nodes`) may read a Secret, ConfigMap or PersistentVolumeClaim, and request a token for a
ServiceAccount, only when a pod bound to that node references it (node_graph.py keeps the references).

    get secrets/x                                   allowed when a pod on the node references x
    list/watch secrets?fieldSelector=metadata.name=x  the same (the kubelet watches single objects this way)
    list/watch secrets (no single name)             refused: no node reads Secrets in bulk
    any write of these                              refused
    persistentvolumes                               refused: the graph has no pvc -> pv edges yet

It answers only for nodes and only for these resources (None = no opinion, RBAC decides the rest). The
system:node ClusterRole grants none of these resources, so RBAC refuses what this authorizer refuses unless an
administrator bound the node to more; then, as in Kubernetes' `Node,RBAC`, RBAC's grant stands.
"""

from __future__ import annotations

from typing import Protocol

from apiserver.auth.attributes import Attributes
from apiserver.auth.rbac import Decision
from apiserver.auth.user import UserInfo

READ_VERBS = ("get", "list", "watch")
GUARDED_READS = frozenset({"secrets", "configmaps", "persistentvolumeclaims", "persistentvolumes"})


class Relationships(Protocol):
    """Whether a pod bound to `node` references the object (NodeGraph / WatchedNodeGraph)."""

    def related(self, node: str, resource: str, namespace: str, name: str) -> bool: ...


class _Authorizer(Protocol):
    """RBACAuthorizer's shape: always a decision."""

    def authorize(self, user: UserInfo, attrs: Attributes) -> Decision: ...


def _no_relationship(node: str) -> Decision:
    return Decision(False, f"no relationship found between node '{node}' and this object")


class NodeAuthorizer:
    def __init__(self, graph: Relationships) -> None:
        self.graph = graph

    def authorize(self, user: UserInfo, attrs: Attributes) -> Decision | None:
        node = user.node_name
        if node is None or not attrs.resource_request or attrs.api_group != "":
            return None
        if attrs.resource in GUARDED_READS:
            return self._read(node, attrs)
        if attrs.resource == "serviceaccounts" and attrs.subresource == "token":
            return self._token(node, attrs)
        return None

    def _read(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in READ_VERBS:
            return Decision(False, "can only read resources of this type")
        if attrs.subresource:
            return Decision(False, "cannot read subresource")
        if not attrs.name:
            return Decision(False, "No Object name found")
        if self.graph.related(node, attrs.resource, attrs.namespace, attrs.name):
            return Decision(True)
        return _no_relationship(node)

    def _token(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb != "create" or not attrs.name:
            return Decision(False, "can only create tokens for individual service accounts")
        if self.graph.related(node, "serviceaccounts", attrs.namespace, attrs.name):
            return Decision(True)
        return _no_relationship(node)


class NodeThenRBAC:
    """Kubernetes' union authorizer over `Node,RBAC`: the first to allow wins; a denial carries both reasons."""

    def __init__(self, node: NodeAuthorizer, rbac: _Authorizer) -> None:
        self.node = node
        self.rbac = rbac

    def authorize(self, user: UserInfo, attrs: Attributes) -> Decision:
        by_node = self.node.authorize(user, attrs)
        if by_node is not None and by_node.allowed:
            return by_node
        by_rbac = self.rbac.authorize(user, attrs)
        if by_rbac.allowed or by_node is None:
            return by_rbac
        reasons = [r for r in (by_node.reason, by_rbac.reason) if r]
        return Decision(False, ", ".join(reasons))
