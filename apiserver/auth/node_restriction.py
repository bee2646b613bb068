"""The node restriction (Kubernetes' NodeRestriction admission): a node credential (`system:node:<name>` in
`system:nodes`) may write only its own Node, its own Lease in kube-node-lease, and pods bound to it; a pod it
creates may not reference Secrets, ConfigMaps, PVCs or a service account (else creating a pod on itself would
hand the node, through the Node authorizer's graph, any Secret it names — a bootstrap token, say).

RBAC grants nodes the verbs (ClusterRole system:node); this check narrows writes to the node's own objects.
It runs after authorization, needs the target pod's current spec.nodeName for pod writes (read through an
injected function) and, for creates, the request body's name or spec.nodeName.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiokube.api.types import Obj
from apiserver.auth.attributes import Attributes
from apiserver.auth.node_graph import pod_references
from apiserver.auth.user import UserInfo

NODE_LEASE_NAMESPACE = "kube-node-lease"

# Returns the stored pod (namespace, name) or None when it does not exist.
PodReader = Callable[[str, str], Awaitable[Obj | None]]


def needs_body(user: UserInfo, attrs: Attributes) -> bool:
    """Whether `check` will want the request body: creates of a node's own objects name them in the body."""
    return (user.node_name is not None and attrs.verb == "create" and not attrs.subresource
            and (attrs.api_group, attrs.resource) in (("", "nodes"), ("", "pods"), ("coordination.k8s.io", "leases")))


def _forbidden(attrs: Attributes, name: str, why: str) -> str:
    subject = attrs.qualified_resource + (f' "{name}"' if name else "")
    return f"{subject} is forbidden: {why}"


async def check(user: UserInfo, attrs: Attributes, body: Obj | None, read_pod: PodReader) -> str | None:
    """None when allowed, else the Forbidden message."""
    node = user.node_name
    if node is None or not attrs.resource_request or not attrs.is_write:
        return None
    body_meta = (body or {}).get("metadata") or {}
    name = attrs.name or str(body_meta.get("name") or "")
    if attrs.api_group == "" and attrs.resource == "nodes":
        if name != node:
            return _forbidden(attrs, name, f'node "{node}" is not allowed to modify node "{name}"')
        return None
    if attrs.api_group == "coordination.k8s.io" and attrs.resource == "leases":
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            return _forbidden(attrs, name, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system '
                                           f'namespace')
        if name != node:
            return _forbidden(attrs, name, "can only access node lease with the same name as the requesting node")
        return None
    if attrs.api_group == "" and attrs.resource == "pods":
        return await _check_pod(node, attrs, name, body, read_pod)
    return None


async def _check_pod(node: str, attrs: Attributes, name: str, body: Obj | None, read_pod: PodReader) -> str | None:
    if attrs.verb == "create" and not attrs.subresource:
        bound_to = ((body or {}).get("spec") or {}).get("nodeName")
        if bound_to != node:
            return _forbidden(attrs, name, f'node "{node}" can only create pods with spec.nodeName set to itself')
        referenced = {resource for resource, _ in pod_references(body or {})}
        for resource, what in (("serviceaccounts", "use service accounts"), ("secrets", "reference secrets"),
                               ("configmaps", "reference configmaps"),
                               ("persistentvolumeclaims", "reference persistentvolumeclaims")):
            if resource in referenced:
                return _forbidden(attrs, name, f'node "{node}" can not create pods that {what}')
        return None
    if attrs.verb == "deletecollection" or attrs.subresource == "binding":
        return _forbidden(attrs, name, f'node "{node}" can only modify pods with spec.nodeName set to itself')
    pod = await read_pod(attrs.namespace, attrs.name)
    if pod is None:
        return None  # nothing to protect: the handler answers 404
    if (pod.get("spec") or {}).get("nodeName") == node:
        return None
    if attrs.subresource == "status":
        action = "update pod status for"
    elif attrs.subresource == "eviction":
        action = "evict"
    elif attrs.verb == "delete":
        action = "delete"
    else:
        action = "modify"
    return _forbidden(attrs, name, f'node "{node}" can only {action} pods with spec.nodeName set to itself')
