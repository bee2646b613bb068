"""The Node authorizer's decisions over a NodeGraph: what a node's bound pods reference it may read, nothing
else; the graph's references and counts; the Node-then-RBAC chain over the default policy; and the node
restriction that keeps a node from creating pods that would add edges to its own graph."""

from __future__ import annotations

import time

from aiokube.api.types import Obj
from apiserver.auth import node_restriction
from apiserver.auth.attributes import request_attributes
from apiserver.auth.bootstrap_policy import default_cluster_role_bindings, default_cluster_roles
from apiserver.auth.node_authorizer import NodeAuthorizer, NodeThenRBAC
from apiserver.auth.node_graph import NodeGraph, pod_references
from apiserver.auth.rbac import RBACAuthorizer, forbidden_message
from apiserver.auth.user import UserInfo
from tests.unit.test_auth_rbac import MemoryPolicy

NODE_A = UserInfo("system:node:node-a", groups=("system:nodes", "system:authenticated"))
NODE_B = UserInfo("system:node:node-b", groups=("system:nodes", "system:authenticated"))
BOB = UserInfo("bob", groups=("system:authenticated",))


def web_pod(node: str | None = "node-a", name: str = "web") -> Obj:
    spec: Obj = {
        "containers": [{"name": "c", "image": "busybox",
                        "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db-pass", "key": "pw"}}},
                                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "modes", "key": "m"}}}],
                        "envFrom": [{"configMapRef": {"name": "env-cm"}}, {"secretRef": {"name": "env-secret"}}]}],
        "initContainers": [{"name": "i", "image": "busybox", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
        "volumes": [{"name": "certs", "secret": {"secretName": "tls"}},
                    {"name": "conf", "configMap": {"name": "conf"}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "csi", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-creds"}}},
                    {"name": "all", "projected": {"sources": [
                        {"secret": {"name": "proj-secret"}}, {"configMap": {"name": "kube-root-ca.crt"}},
                        {"serviceAccountToken": {"path": "token"}}]}}],
        "imagePullSecrets": [{"name": "registry"}],
        "serviceAccountName": "runner",
    }
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "namespace": "shop"}, "spec": spec}


def test_pod_references_cover_volumes_env_pull_secrets_and_service_account() -> None:
    assert pod_references(web_pod()) == {
        ("secrets", "db-pass"), ("configmaps", "modes"), ("configmaps", "env-cm"), ("secrets", "env-secret"),
        ("secrets", "init-secret"), ("secrets", "tls"), ("configmaps", "conf"), ("persistentvolumeclaims", "data"),
        ("persistentvolumeclaims", "web-scratch"), ("secrets", "csi-creds"), ("secrets", "proj-secret"),
        ("configmaps", "kube-root-ca.crt"), ("secrets", "registry"), ("serviceaccounts", "runner")}


def allowed(authorizer: NodeAuthorizer, who: UserInfo, method: str, path: str, query: str = "") -> bool | None:
    decision = authorizer.authorize(who, request_attributes(method, path, query))
    return None if decision is None else decision.allowed


def test_node_reads_only_what_its_bound_pods_reference() -> None:
    graph = NodeGraph()
    graph.set_pod("shop", "web", web_pod())
    node = NodeAuthorizer(graph)
    base = "/api/v1/namespaces/shop"
    for path in ("secrets/db-pass", "secrets/tls", "secrets/registry", "configmaps/kube-root-ca.crt",
                 "persistentvolumeclaims/web-scratch"):
        assert allowed(node, NODE_A, "GET", f"{base}/{path}") is True, path
    # The kubelet's single-object list/watch is authorized as that name.
    assert allowed(node, NODE_A, "GET", f"{base}/secrets", "fieldSelector=metadata.name%3Dtls&watch=true") is True
    assert allowed(node, NODE_A, "GET", f"{base}/secrets", "fieldSelector=metadata.name=tls") is True
    assert allowed(node, NODE_A, "GET", f"{base}/secrets", "fieldSelector=metadata.name==tls") is True
    assert allowed(node, NODE_A, "GET", f"{base}/secrets", "fieldSelector=metadata.name!=tls") is False
    # Not referenced, another namespace, another node, bulk reads, writes: refused.
    assert allowed(node, NODE_A, "GET", f"{base}/secrets/other") is False
    assert allowed(node, NODE_A, "GET", "/api/v1/namespaces/default/secrets/tls") is False
    assert allowed(node, NODE_A, "GET", "/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef") is False
    assert allowed(node, NODE_B, "GET", f"{base}/secrets/tls") is False
    assert allowed(node, NODE_A, "GET", f"{base}/secrets") is False
    assert allowed(node, NODE_A, "GET", "/api/v1/secrets", "watch=1") is False
    assert allowed(node, NODE_A, "PUT", f"{base}/secrets/tls") is False
    assert allowed(node, NODE_A, "DELETE", f"{base}/configmaps/conf") is False
    assert allowed(node, NODE_A, "GET", "/api/v1/persistentvolumes/pv-1") is False
    # Tokens only for the service account of a bound pod.
    assert allowed(node, NODE_A, "POST", f"{base}/serviceaccounts/runner/token") is True
    assert allowed(node, NODE_A, "POST", "/api/v1/namespaces/kube-system/serviceaccounts/admin/token") is False
    # No opinion on other resources or for other users: RBAC decides those.
    assert allowed(node, NODE_A, "GET", f"{base}/pods/web") is None
    assert allowed(node, BOB, "GET", f"{base}/secrets/tls") is None


def test_graph_follows_binding_moves_and_deletes() -> None:
    graph = NodeGraph()
    graph.set_pod("shop", "pending", web_pod(node=None, name="pending"))
    assert not graph.related("node-a", "secrets", "shop", "tls")  # unbound pods give no node anything
    graph.set_pod("shop", "web", web_pod())
    graph.set_pod("shop", "web2", web_pod(name="web2"))
    graph.delete_pod("shop", "web")
    assert graph.related("node-a", "secrets", "shop", "tls")  # still referenced by web2
    graph.set_pod("shop", "web2", web_pod(node="node-b", name="web2"))
    assert not graph.related("node-a", "secrets", "shop", "tls")
    assert graph.related("node-b", "secrets", "shop", "tls")
    graph.delete_pod("shop", "web2")
    assert not graph.related("node-b", "secrets", "shop", "tls") and len(graph) == 0
    assert graph._counts == {}  # no leftover counts


def test_chain_over_default_policy() -> None:
    graph = NodeGraph()
    graph.set_pod("shop", "web", web_pod())
    chain = NodeThenRBAC(NodeAuthorizer(graph),
                         RBACAuthorizer(MemoryPolicy([*default_cluster_roles(), *default_cluster_role_bindings()])))

    def decide(who: UserInfo, method: str, path: str) -> tuple[bool, str]:
        attrs = request_attributes(method, path)
        decision = chain.authorize(who, attrs)
        return decision.allowed, forbidden_message(who, attrs, decision.reason)

    assert decide(NODE_A, "GET", "/api/v1/namespaces/shop/secrets/tls")[0]
    ok, message = decide(NODE_A, "GET", "/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef")
    assert not ok
    assert message == ('secrets "bootstrap-token-abcdef" is forbidden: User "system:node:node-a" cannot get '
                       'resource "secrets" in API group "" in the namespace "kube-system": no relationship found '
                       "between node 'node-a' and this object")
    assert not decide(NODE_A, "GET", "/api/v1/namespaces/kube-system/secrets")[0]
    assert not decide(NODE_A, "GET", "/api/v1/configmaps")[0]
    # Everything else a node does is still RBAC's.
    assert decide(NODE_A, "GET", "/api/v1/namespaces/shop/pods")[0]
    assert decide(NODE_A, "PATCH", "/api/v1/nodes/node-a/status")[0]
    admin = UserInfo("admin", groups=("system:masters",))
    assert decide(admin, "GET", "/api/v1/namespaces/kube-system/secrets")[0]


def test_decisions_and_updates_stay_cheap() -> None:
    graph = NodeGraph()
    for i in range(5000):
        graph.set_pod("shop", f"web-{i}", web_pod(node=f"node-{i % 50}", name=f"web-{i}"))
    node = NodeAuthorizer(graph)
    attrs = request_attributes("GET", "/api/v1/namespaces/shop/secrets/tls")
    start = time.perf_counter()
    for _ in range(10000):
        assert node.authorize(NODE_A, attrs) is not None
    per_decision = (time.perf_counter() - start) / 10000
    assert per_decision < 50e-6, per_decision  # one dict lookup: ~1 µs; generous for a loaded CI machine
    start = time.perf_counter()
    for i in range(5000):  # status-only updates leave the index alone
        graph.set_pod("shop", f"web-{i}", web_pod(node=f"node-{i % 50}", name=f"web-{i}"))
    assert (time.perf_counter() - start) / 5000 < 500e-6


async def test_node_cannot_create_a_pod_that_would_grant_it_secrets() -> None:
    async def no_pod(namespace: str, name: str) -> Obj | None:
        return None

    async def create(body: Obj) -> str | None:
        return await node_restriction.check(NODE_A, request_attributes("POST", "/api/v1/namespaces/shop/pods"),
                                            body, no_pod)

    plain: Obj = {"metadata": {"name": "static"}, "spec": {"nodeName": "node-a", "containers": [{"name": "c"}]}}
    assert await create(plain) is None
    stealing = web_pod()
    stealing["spec"] = {"nodeName": "node-a", "volumes": [{"name": "t", "secret": {"secretName": "bootstrap-token-x"}}]}
    assert await create(stealing) == 'pods "web" is forbidden: node "node-a" can not create pods that reference secrets'
    assert await create(web_pod()) == 'pods "web" is forbidden: node "node-a" can not create pods that use service ' \
                                      'accounts'
