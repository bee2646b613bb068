"""The real API server over HTTPS with client certificates, static tokens and RBAC, on the session's etcd:
401 without credentials, RBAC grants and denies as bound, the node restriction, the default policy, kubectl."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.etcd import EtcdProcess
from tests.support.secure_apiserver import SecureCluster, secure_cluster

pytestmark = pytest.mark.etcd

RBAC = "/apis/rbac.authorization.k8s.io/v1"
PODS = "/api/v1/namespaces/default/pods"
BOB_TOKEN = "bob-token-0123456789"


@pytest.fixture(scope="module")
def cluster(etcd: EtcdProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    # One server for the module: each test uses names of its own.
    with secure_cluster(etcd.url, f"/test-auth-{uuid.uuid4().hex[:8]}", str(tmp_path_factory.mktemp("pki"))) as c:
        yield c


def client_for(cluster: SecureCluster, user: str | None = None, groups: tuple[str, ...] = (),
               token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=cluster.url, verify=cluster.ssl_context(user, groups), headers=headers,
                             timeout=10)


@pytest.fixture
async def admin(cluster: SecureCluster) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(cluster, "kubernetes-admin", ("system:masters",)) as client:
        yield client


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll an async predicate for up to 5 s: RBAC changes reach the authorizer through its watch, a few ms
    after the write."""
    for _ in range(250):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached within 5 s")


def pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}


async def test_no_credentials_is_401_and_health_is_public(cluster: SecureCluster) -> None:
    async with client_for(cluster) as anonymous:
        denied = await anonymous.get(PODS)
        assert denied.status_code == 401
        assert denied.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                 "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
        assert (await anonymous.get("/api")).status_code == 401
        assert (await anonymous.get("/readyz")).status_code == 200
        assert (await anonymous.get("/version")).status_code == 200
    async with client_for(cluster, token="not-a-known-token") as forged:
        assert (await forged.get("/readyz")).status_code == 401  # a bad credential is never anonymous


async def test_token_and_certificate_identities(cluster: SecureCluster, admin: httpx.AsyncClient) -> None:
    assert (await admin.get(PODS)).status_code == 200
    async with client_for(cluster, token=BOB_TOKEN) as bob:
        assert (await bob.get("/api")).status_code == 200  # discovery for every authenticated user
        denied = await bob.get(PODS)
    assert denied.status_code == 403 and denied.json()["reason"] == "Forbidden"
    assert denied.json()["message"] == ('pods is forbidden: User "bob" cannot list resource "pods" in API group "" '
                                        'in the namespace "default"')
    assert denied.json()["details"] == {"group": "", "kind": "pods"}


async def test_rbac_grants_and_denies_as_bound(cluster: SecureCluster, admin: httpx.AsyncClient) -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}
    assert (await admin.post(f"{RBAC}/namespaces/default/roles", json=role)).status_code == 201
    rb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "bob-reads"},
          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
          "subjects": [{"kind": "User", "name": "bob"}]}
    created = await admin.post(f"{RBAC}/namespaces/default/rolebindings", json=rb)
    assert created.status_code == 201, created.text
    assert created.json()["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"  # defaulted
    async with client_for(cluster, token=BOB_TOKEN) as bob:
        async def bob_can_list() -> bool:
            return (await bob.get(PODS)).status_code == 200

        await eventually(bob_can_list)
        assert (await bob.get("/api/v1/namespaces/kube-system/pods")).status_code == 403
        assert (await bob.delete(f"{PODS}/anything")).status_code == 403
        assert (await bob.post(PODS, json=pod("x", "n"))).status_code == 403
        assert (await admin.delete(f"{RBAC}/namespaces/default/rolebindings/bob-reads")).status_code == 200

        async def bob_is_denied() -> bool:
            return (await bob.get(PODS)).status_code == 403

        await eventually(bob_is_denied)


async def test_node_may_modify_only_its_own_objects(cluster: SecureCluster, admin: httpx.AsyncClient) -> None:
    for name, node in (("on-a", "node-a"), ("on-b", "node-b")):
        response = await admin.post(PODS, json=pod(name, node))
        assert response.status_code == 201, response.text
    async with client_for(cluster, "system:node:node-a", ("system:nodes",)) as node_a:
        created = await node_a.post("/api/v1/nodes", json={"apiVersion": "v1", "kind": "Node",
                                                           "metadata": {"name": "node-a"}})
        assert created.status_code == 201, created.text
        other = await node_a.post("/api/v1/nodes", json={"apiVersion": "v1", "kind": "Node",
                                                         "metadata": {"name": "node-b"}})
        assert other.status_code == 403
        status_patch = {"status": {"phase": "Running"}}
        headers = {"Content-Type": "application/merge-patch+json"}
        own = await node_a.patch(f"{PODS}/on-a/status", json=status_patch, headers=headers)
        assert own.status_code == 200, own.text
        theirs = await node_a.patch(f"{PODS}/on-b/status", json=status_patch, headers=headers)
        assert theirs.status_code == 403
        assert theirs.json()["message"] == ('pods "on-b" is forbidden: node "node-a" can only update pod status '
                                            'for pods with spec.nodeName set to itself')
        assert (await node_a.delete(f"{PODS}/on-b")).status_code == 403
        assert (await node_a.get(f"{PODS}/on-b")).status_code == 200  # reading is allowed by system:node
        lease: dict[str, Any] = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                 "metadata": {"name": "node-a"}, "spec": {"holderIdentity": "node-a"}}
        leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        assert (await node_a.post(leases, json=lease)).status_code == 201
        lease["metadata"]["name"] = "node-b"
        assert (await node_a.post(leases, json=lease)).status_code == 403
    assert (await admin.get(f"{PODS}/on-b")).json()["metadata"].get("deletionTimestamp") is None


async def test_default_policy_exists(admin: httpx.AsyncClient) -> None:
    roles = {r["metadata"]["name"] for r in (await admin.get(f"{RBAC}/clusterroles")).json()["items"]}
    assert {"cluster-admin", "admin", "edit", "view", "system:node", "system:kube-controller-manager",
            "system:kube-scheduler", "system:discovery"} <= roles
    crb = (await admin.get(f"{RBAC}/clusterrolebindings/cluster-admin")).json()
    assert crb["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]
    table = await admin.get(f"{RBAC}/clusterrolebindings",
                            headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    row = next(r for r in table.json()["rows"] if r["cells"][0] == "cluster-admin")
    assert row["cells"][1] == "ClusterRole/cluster-admin"


def _kubeconfig(cluster: SecureCluster, path: Path, user: dict) -> str:
    with open(cluster.ca_file, "rb") as f:
        ca_data = base64.b64encode(f.read()).decode()
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "c", "cluster": {"server": cluster.url, "certificate-authority-data": ca_data}}],
              "users": [{"name": "u", "user": user}],
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "default"}}]}
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.skipif(not os.path.exists("/usr/bin/kubectl"), reason="kubectl is not installed: cannot run the oracle")
def test_kubectl_with_client_certificate_and_token(cluster: SecureCluster, tmp_path: Path) -> None:
    from aiokube.cluster import pki

    admin_pair = pki.issue_admin_cert(cluster.ca)
    admin_cfg = _kubeconfig(cluster, tmp_path / "admin", {"client-certificate-data": admin_pair.cert_data,
                                                          "client-key-data": admin_pair.key_data})
    env = {**os.environ, "HOME": str(tmp_path)}  # a private discovery cache
    ok = subprocess.run(["kubectl", "--kubeconfig", admin_cfg, "get", "clusterroles", "cluster-admin"],
                        capture_output=True, text=True, timeout=60, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "cluster-admin" in ok.stdout
    bob_cfg = _kubeconfig(cluster, tmp_path / "bob", {"token": BOB_TOKEN})
    denied = subprocess.run(["kubectl", "--kubeconfig", bob_cfg, "get", "secrets", "-n", "kube-system"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert denied.returncode != 0
    assert 'User "bob" cannot list resource "secrets" in API group "" in the namespace "kube-system"' in denied.stderr
    # (With no credentials at all kubectl prompts for a username on a 401, as against any cluster.)
    forged_cfg = _kubeconfig(cluster, tmp_path / "forged", {"token": "forged-token"})
    unauthorized = subprocess.run(["kubectl", "--kubeconfig", forged_cfg, "get", "pods"], capture_output=True,
                                  text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert unauthorized.returncode != 0
    assert "You must be logged in to the server (Unauthorized)" in unauthorized.stderr


async def test_bootstrap_token_authenticates_as_bootstrapper(cluster: SecureCluster,
                                                             admin: httpx.AsyncClient) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
              "metadata": {"name": "bootstrap-token-k8sabc", "namespace": "kube-system"},
              "stringData": {"token-id": "k8sabc", "token-secret": "0123456789abcdef",
                             "usage-bootstrap-authentication": "true"}}
    created = await admin.post("/api/v1/namespaces/kube-system/secrets", json=secret)
    assert created.status_code == 201, created.text
    async with client_for(cluster, token="k8sabc.0123456789abcdef") as joining:
        assert (await joining.get("/api")).status_code == 200
        denied = await joining.get(PODS)
        assert denied.status_code == 403 and 'User "system:bootstrap:k8sabc"' in denied.json()["message"]
    async with client_for(cluster, token="k8sabc.0123456789abcdeX") as wrong:
        assert (await wrong.get("/api")).status_code == 401


async def test_node_reads_only_secrets_its_bound_pods_reference(cluster: SecureCluster,
                                                                admin: httpx.AsyncClient) -> None:
    """The Node authorizer: no bulk Secret reads, no bootstrap tokens, only what a pod bound to the node uses,
    and only while it is bound there."""
    def secret(name: str, namespace: str = "default") -> dict:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                "stringData": {"k": "v"}}

    token = secret("bootstrap-token-nodeab", "kube-system")
    token.update(type="bootstrap.kubernetes.io/token",
                 stringData={"token-id": "nodeab", "token-secret": "0123456789abcdef",
                             "usage-bootstrap-authentication": "true"})
    assert (await admin.post("/api/v1/namespaces/kube-system/secrets", json=token)).status_code == 201
    assert (await admin.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": "elsewhere"}})).status_code == 201
    assert (await admin.post("/api/v1/namespaces/elsewhere/secrets", json=secret("unrelated", "elsewhere"))
            ).status_code == 201
    for name in ("app-secret", "app-env"):
        assert (await admin.post("/api/v1/namespaces/default/secrets", json=secret(name))).status_code == 201
    secrets = "/api/v1/namespaces/default/secrets"

    async with client_for(cluster, "system:node:node-s", ("system:nodes",)) as node_s:
        async def status_of(path: str, **params: str) -> int:
            return (await node_s.get(path, params=params)).status_code

        denied = await node_s.get("/api/v1/namespaces/kube-system/secrets/bootstrap-token-nodeab")
        assert denied.status_code == 403
        assert "no relationship found between node 'node-s' and this object" in denied.json()["message"]
        assert await status_of("/api/v1/namespaces/kube-system/secrets") == 403
        assert await status_of("/api/v1/secrets") == 403
        assert await status_of("/api/v1/namespaces/elsewhere/secrets/unrelated") == 403
        assert await status_of(f"{secrets}/app-secret") == 403  # no pod uses it yet

        web = pod("uses-secrets", "node-s")
        web["spec"]["volumes"] = [{"name": "s", "secret": {"secretName": "app-secret"}}]
        web["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "app-env"}}]
        assert (await admin.post(PODS, json=web)).status_code == 201

        async def readable() -> bool:
            return await status_of(f"{secrets}/app-secret") == 200
        await eventually(readable)
        assert await status_of(f"{secrets}/app-env") == 200
        # The kubelet's way of watching one object: list/watch narrowed to its name.
        listed = await node_s.get(secrets, params={"fieldSelector": "metadata.name=app-secret"})
        assert listed.status_code == 200 and [s["metadata"]["name"] for s in listed.json()["items"]] == ["app-secret"]
        assert await status_of(secrets) == 403  # but never the whole namespace
        assert await status_of("/api/v1/namespaces/kube-system/secrets/bootstrap-token-nodeab") == 403
        assert (await node_s.put(f"{secrets}/app-secret", json=secret("app-secret"))).status_code == 403

        # Bound elsewhere: a pod on another node referencing a Secret gives node-s nothing.
        other = pod("on-other-node", "node-t")
        other["spec"]["volumes"] = [{"name": "s", "secret": {"secretName": "app-other"}}]
        assert (await admin.post("/api/v1/namespaces/default/secrets", json=secret("app-other"))).status_code == 201
        assert (await admin.post(PODS, json=other)).status_code == 201
        async with client_for(cluster, "system:node:node-t", ("system:nodes",)) as node_t:
            async def readable_by_t() -> bool:
                return (await node_t.get(f"{secrets}/app-other")).status_code == 200
            await eventually(readable_by_t)
            assert (await node_t.get(f"{secrets}/app-secret")).status_code == 403
        assert await status_of(f"{secrets}/app-other") == 403

        # Once the pod is gone, so is the access.
        gone = await admin.delete(f"{PODS}/uses-secrets", params={"gracePeriodSeconds": "0"})
        assert gone.status_code == 200, gone.text

        async def revoked() -> bool:
            return await status_of(f"{secrets}/app-secret") == 403
        await eventually(revoked)
        assert await status_of(f"{secrets}/app-env") == 403
