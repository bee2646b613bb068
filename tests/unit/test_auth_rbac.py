"""Request attributes, the RBAC authorizer over an in-memory policy, Forbidden messages, node restriction."""

from __future__ import annotations

from collections.abc import Iterable

from aiokube.api.types import Obj
from apiserver.auth import node_restriction
from apiserver.auth.attributes import request_attributes
from apiserver.auth.bootstrap_policy import default_cluster_role_bindings, default_cluster_roles
from apiserver.auth.rbac import RBACAuthorizer, forbidden_message
from apiserver.auth.user import UserInfo


class MemoryPolicy:
    def __init__(self, objs: Iterable[Obj]) -> None:
        self.objs = list(objs)

    def _of(self, kind: str, namespace: str = "") -> list[Obj]:
        return [o for o in self.objs if o["kind"] == kind and o["metadata"].get("namespace", "") == namespace]

    def cluster_role(self, name: str) -> Obj | None:
        return next((o for o in self._of("ClusterRole") if o["metadata"]["name"] == name), None)

    def role(self, namespace: str, name: str) -> Obj | None:
        return next((o for o in self._of("Role", namespace) if o["metadata"]["name"] == name), None)

    def cluster_role_bindings(self) -> Iterable[Obj]:
        return self._of("ClusterRoleBinding")

    def role_bindings(self, namespace: str) -> Iterable[Obj]:
        return self._of("RoleBinding", namespace)


def role(kind: str, name: str, rules: list[Obj], namespace: str = "") -> Obj:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": meta, "rules": rules}


def binding(kind: str, name: str, ref_kind: str, ref: str, subjects: list[Obj], namespace: str = "") -> Obj:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": meta, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind,
                                                        "name": ref}, "subjects": subjects}


def user(name: str, *groups: str) -> UserInfo:
    return UserInfo(name, groups=(*groups, "system:authenticated"))


def test_request_attributes() -> None:
    a = request_attributes("GET", "/api/v1/namespaces/default/pods/web/status")
    assert (a.verb, a.api_group, a.resource, a.subresource, a.namespace, a.name) == \
        ("get", "", "pods", "status", "default", "web")
    assert request_attributes("GET", "/apis/apps/v1/deployments", b"watch=true").verb == "watch"
    assert request_attributes("GET", "/apis/apps/v1/watch/namespaces/x/deployments").verb == "watch"
    listed = request_attributes("GET", "/api/v1/nodes", b"fieldSelector=metadata.name%3Dnode-a")
    assert (listed.verb, listed.name) == ("list", "node-a")
    ns = request_attributes("PUT", "/api/v1/namespaces/dev/finalize")
    assert (ns.verb, ns.resource, ns.name, ns.namespace, ns.subresource) == \
        ("update", "namespaces", "dev", "dev", "finalize")
    assert request_attributes("DELETE", "/api/v1/namespaces/a/pods").verb == "deletecollection"
    assert request_attributes("PATCH", "/apis/apps/v1/namespaces/a/deployments/w/scale").subresource == "scale"
    for path in ("/healthz", "/api", "/api/v1", "/apis/apps", "/apis/apps/v1", "/openapi/v3/api/v1"):
        attrs = request_attributes("GET", path)
        assert not attrs.resource_request and attrs.verb == "get", path


def test_rbac_grants_as_bound() -> None:
    policy = MemoryPolicy([
        role("Role", "pod-reader", [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}], "dev"),
        role("ClusterRole", "deployer", [{"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments",
                                                                                           "*/scale"]}]),
        role("ClusterRole", "one-cm", [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"],
                                        "resourceNames": ["settings"]}]),
        binding("RoleBinding", "bob-reads", "Role", "pod-reader",
                [{"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"}], "dev"),
        binding("RoleBinding", "ops-deploy", "ClusterRole", "deployer",
                [{"kind": "Group", "name": "ops", "apiGroup": "rbac.authorization.k8s.io"}], "dev"),
        binding("ClusterRoleBinding", "sa-cm", "ClusterRole", "one-cm",
                [{"kind": "ServiceAccount", "name": "app", "namespace": "dev"}]),
    ])
    rbac = RBACAuthorizer(policy)

    def allowed(who: UserInfo, method: str, path: str) -> bool:
        return rbac.authorize(who, request_attributes(method, path)).allowed

    bob, ops = user("bob"), user("olga", "ops")
    assert allowed(bob, "GET", "/api/v1/namespaces/dev/pods")
    assert not allowed(bob, "GET", "/api/v1/namespaces/prod/pods")  # a RoleBinding grants only its namespace
    assert not allowed(bob, "DELETE", "/api/v1/namespaces/dev/pods/x")
    assert not allowed(bob, "GET", "/api/v1/namespaces/dev/pods/x/log")  # subresources are separate
    assert allowed(ops, "PATCH", "/apis/apps/v1/namespaces/dev/deployments/web")
    assert allowed(ops, "PUT", "/apis/apps/v1/namespaces/dev/statefulsets/db/scale")  # "*/scale"
    assert not allowed(ops, "GET", "/apis/apps/v1/namespaces/dev/statefulsets/db")
    assert not allowed(ops, "GET", "/apis/apps/v1/deployments")  # cluster scope: no ClusterRoleBinding
    sa = user("system:serviceaccount:dev:app", "system:serviceaccounts")
    assert allowed(sa, "GET", "/api/v1/namespaces/any/configmaps/settings")
    assert not allowed(sa, "GET", "/api/v1/namespaces/any/configmaps/other")
    assert not allowed(sa, "GET", "/api/v1/namespaces/any/configmaps")  # resourceNames never grant list
    assert allowed(user("root", "system:masters"), "DELETE", "/api/v1/nodes/n1")


def test_missing_role_is_named_in_the_reason() -> None:
    policy = MemoryPolicy([binding("RoleBinding", "b", "Role", "ghost",
                                   [{"kind": "User", "name": "bob"}], "dev")])
    decision = RBACAuthorizer(policy).authorize(user("bob"), request_attributes("GET", "/api/v1/namespaces/dev/pods"))
    assert not decision.allowed
    assert decision.reason == 'RBAC: role.rbac.authorization.k8s.io "ghost" not found'


def test_forbidden_messages_match_kubernetes() -> None:
    bob = user("bob")
    assert forbidden_message(bob, request_attributes("GET", "/api/v1/namespaces/default/pods")) == \
        'pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default"'
    assert forbidden_message(bob, request_attributes("DELETE", "/apis/apps/v1/namespaces/a/deployments/web")) == \
        ('deployments.apps "web" is forbidden: User "bob" cannot delete resource "deployments" in API group '
         '"apps" in the namespace "a"')
    assert forbidden_message(bob, request_attributes("GET", "/api/v1/nodes/n1/status")) == \
        'nodes "n1" is forbidden: User "bob" cannot get resource "nodes/status" in API group "" at the cluster scope'
    assert forbidden_message(bob, request_attributes("GET", "/metrics")) == \
        'forbidden: User "bob" cannot get path "/metrics"'


def test_default_policy() -> None:
    rbac = RBACAuthorizer(MemoryPolicy([*default_cluster_roles(), *default_cluster_role_bindings()]))

    def allowed(who: UserInfo, method: str, path: str) -> bool:
        return rbac.authorize(who, request_attributes(method, path)).allowed

    nobody = user("nobody")
    assert allowed(nobody, "GET", "/api") and allowed(nobody, "GET", "/openapi/v3/apis/apps/v1")
    assert not allowed(nobody, "GET", "/api/v1/namespaces/default/pods")
    anonymous = UserInfo("system:anonymous", groups=("system:unauthenticated",))
    assert allowed(anonymous, "GET", "/healthz") and not allowed(anonymous, "GET", "/api")
    node = user("system:node:n1", "system:nodes")
    assert allowed(node, "PATCH", "/api/v1/nodes/n1/status")
    assert allowed(node, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1")
    assert not allowed(node, "DELETE", "/apis/apps/v1/namespaces/default/deployments/web")
    scheduler = user("system:kube-scheduler")
    assert allowed(scheduler, "POST", "/api/v1/namespaces/default/pods/web/binding")
    assert not allowed(scheduler, "DELETE", "/api/v1/nodes/n1")
    kcm = user("system:kube-controller-manager")
    assert allowed(kcm, "POST", "/apis/apps/v1/namespaces/default/replicasets")
    assert allowed(kcm, "DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/gone/roles/r")  # namespace cleanup
    assert not allowed(kcm, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings")


async def test_node_restriction() -> None:
    pods = {("default", "mine"): {"spec": {"nodeName": "node-a"}}, ("default", "theirs"): {"spec": {"nodeName":
                                                                                                  "node-b"}}}

    async def read_pod(namespace: str, name: str) -> Obj | None:
        return pods.get((namespace, name))

    node_a = user("system:node:node-a", "system:nodes")

    async def check(method: str, path: str, body: Obj | None = None) -> str | None:
        return await node_restriction.check(node_a, request_attributes(method, path), body, read_pod)

    assert await check("PATCH", "/api/v1/namespaces/default/pods/mine/status") is None
    assert await check("PATCH", "/api/v1/namespaces/default/pods/theirs/status") == \
        'pods "theirs" is forbidden: node "node-a" can only update pod status for pods with spec.nodeName set to itself'
    assert await check("DELETE", "/api/v1/namespaces/default/pods/theirs") is not None
    assert await check("DELETE", "/api/v1/namespaces/default/pods/mine") is None
    assert await check("PUT", "/api/v1/nodes/node-a/status") is None
    assert await check("PUT", "/api/v1/nodes/node-b") == \
        'nodes "node-b" is forbidden: node "node-a" is not allowed to modify node "node-b"'
    assert await check("POST", "/api/v1/nodes", {"metadata": {"name": "node-a"}}) is None
    assert await check("POST", "/api/v1/nodes", {"metadata": {"name": "node-b"}}) is not None
    lease = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    assert await check("PUT", f"{lease}/node-a") is None
    assert await check("PUT", f"{lease}/node-b") is not None
    assert await check("POST", "/api/v1/namespaces/default/pods", {"spec": {"nodeName": "node-b"}}) is not None
    assert await check("GET", "/api/v1/namespaces/default/pods/theirs") is None  # reads are RBAC's business
    other = user("bob")
    assert await node_restriction.check(other, request_attributes("PUT", "/api/v1/nodes/node-b"), None,
                                        read_pod) is None
