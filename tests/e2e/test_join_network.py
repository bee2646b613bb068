"""Joining a worker over the network exactly as on separate VMs: every "machine" is a network namespace reachable
only through its own IP on a bridge. The control plane (etcd, HTTPS API server with client certificates and
RBAC, controller-manager with the CSR controllers, scheduler) runs in one namespace; `aiokube token create`
runs there; `aiokube join --server https://CP:6443 --token … --ca-cert-hash sha256:…` runs in the worker's.

Shown: the node registers and becomes Ready with its own client certificate (the token is deleted afterwards
and the node keeps heartbeating), a wrong CA hash is refused before the token is ever sent, the bootstrap token
gives no node rights, and the node restriction holds for the joined node's credential.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest
import yaml

from aiokube.cluster import netns, pki
from aiokube.cluster.join import stop_services

# Re-exported: tests/e2e/test_ha_control_plane.py imports these from here.
from tests.e2e.join_harness import (  # noqa: F401
    ROOT,
    ControlPlane,
    assert_agent_refuses_all_but_the_api_server,
    in_netns,
    new_control_plane,
    node_ready,
    publish_kubelet_client_ca,
    pytestmark,
    start_apiserver,
    start_components,
    start_etcd,
    wait_until,
    write_kubeconfig,
)


@pytest.fixture
def cluster_id() -> Iterator[str]:
    cid = "j" + uuid.uuid4().hex[:5]
    try:
        yield cid
    finally:
        netns.delete_cluster_network(cid)


def test_worker_joins_over_tls_with_a_token_and_then_uses_its_own_certificate(cluster_id: str, tmp_path) -> None:
    cp_net = netns.create_node_network(cluster_id, 1)
    worker_net = netns.create_node_network(cluster_id, 2)
    cp = new_control_plane(str(tmp_path / "cp"))
    worker_dir = str(tmp_path / "worker")
    try:
        server = start_apiserver(cp, cp_net, start_etcd(cp, cp_net), "apiserver")
        cp.servers.append(server)
        write_kubeconfig(cp.admin_kubeconfig, server, cp.ca, pki.issue_admin_cert(cp.ca))
        publish_kubelet_client_ca(cp)
        start_components(cp, cp_net, server)
        admin = cp.admin_client()

        # No credentials: 401.
        assert httpx.get(f"{server}/api/v1/nodes", verify=False).status_code == 401

        # On the control plane: `aiokube token create` prints the join command.
        created = subprocess.run(in_netns(cp_net, [sys.executable, "-m", "aiokube.cli", "token", "create",
                                                   "--kubeconfig", cp.admin_kubeconfig, "--ttl", "1h"]),
                                 capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert created.returncode == 0, created.stderr
        command = created.stdout.strip().split()
        assert command[:2] == ["aiokube", "join"], created.stdout
        token, ca_hash = command[command.index("--token") + 1], command[command.index("--ca-cert-hash") + 1]
        assert command[command.index("--server") + 1] == server
        assert ca_hash == pki.ca_cert_hash(cp.ca.cert)
        info = admin.get("/api/v1/namespaces/kube-public/configmaps/cluster-info").json()
        assert base64.b64decode(yaml.safe_load(info["data"]["kubeconfig"])["clusters"][0]["cluster"][
            "certificate-authority-data"]) == cp.ca.cert_pem
        anonymous = httpx.get(f"{server}/api/v1/namespaces/kube-public/configmaps/cluster-info", verify=False)
        # As kubeadm does, cluster-info is readable without credentials (RBAC grants it to system:anonymous), so
        # the join verifies the server before it sends the token; anything else anonymous is still refused.
        assert anonymous.status_code == 200, anonymous.text
        assert httpx.get(f"{server}/api/v1/namespaces/kube-public/configmaps", verify=False).status_code == 401
        join_argv = [sys.executable, "-m", "aiokube.cli", *command[1:], "--node-name", "worker-1",
                     "--data-dir", worker_dir, "--no-images", "--timeout", "40"]

        # A wrong CA hash is refused before the node asks for anything (no CSR is created).
        wrong = list(join_argv)
        wrong[wrong.index("--ca-cert-hash") + 1] = "sha256:" + "0" * 64
        refused = subprocess.run(in_netns(worker_net, wrong), capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert refused.returncode == 1 and "refusing to trust this server" in refused.stderr
        assert admin.get("/apis/certificates.k8s.io/v1/certificatesigningrequests").json()["items"] == []

        # On the worker machine: `aiokube join …`.
        joined = subprocess.run(in_netns(worker_net, join_argv), capture_output=True, text=True, timeout=90,
                                cwd=ROOT)
        assert joined.returncode == 0, joined.stdout + joined.stderr
        wait_until("worker-1 Ready", lambda: node_ready(admin, "worker-1"), timeout=40)

        node = admin.get("/api/v1/nodes/worker-1").json()
        assert any(a["address"] == worker_net.node_ip for a in node["status"].get("addresses", []))
        # No --pod-cidr: the controller-manager (nodeipam) allocated the podCIDR, and the node agent handed it to
        # containerd, which rendered its CNI config from it (Ready needs the runtime's NetworkReady).
        pod_cidr = node["spec"]["podCIDR"]
        assert node["spec"]["podCIDRs"] == [pod_cidr]
        assert ipaddress.ip_network(pod_cidr).subnet_of(ipaddress.ip_network("10.244.0.0/16"))
        conf_dir = os.path.join(worker_dir, "containerd", "net.d")
        with open(os.path.join(conf_dir, "10-containerd-net.conflist")) as f:
            bridge = json.load(f)["plugins"][0]
        assert bridge["ipam"]["ranges"] == [[{"subnet": pod_cidr}]]
        csrs = admin.get("/apis/certificates.k8s.io/v1/certificatesigningrequests").json()["items"]
        by_signer = {c["spec"]["signerName"]: c for c in csrs}
        assert len(csrs) == 2 and set(by_signer) == {"kubernetes.io/kube-apiserver-client-kubelet",
                                                     "kubernetes.io/kubelet-serving"}
        csr = by_signer["kubernetes.io/kube-apiserver-client-kubelet"]
        token_id = token.split(".")[0]
        assert csr["spec"]["username"] == f"system:bootstrap:{token_id}"
        assert "system:bootstrappers" in csr["spec"]["groups"]
        assert [c["type"] for c in csr["status"]["conditions"]] == ["Approved"] and csr["status"]["certificate"]
        # The agent's serving certificate was asked for by the node itself (its own credential), for its own
        # addresses, and approved for that reason.
        serving_csr = by_signer["kubernetes.io/kubelet-serving"]
        assert serving_csr["spec"]["username"] == "system:node:worker-1"
        assert [c["type"] for c in serving_csr["status"]["conditions"]] == ["Approved"]
        assert serving_csr["status"]["certificate"]

        # The node's kubeconfig carries its own certificate (CN system:node:worker-1, O system:nodes), no token.
        with open(os.path.join(worker_dir, "kubelet.conf")) as f:
            kubeconfig = yaml.safe_load(f)
        user = kubeconfig["users"][0]["user"]
        assert "token" not in user
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
        assert pki.identity_of(cert) == ("system:node:worker-1", ["system:nodes"])

        # The node agent serves HTTPS for its IP and answers the API server's kubelet-client certificate only.
        assert_agent_refuses_all_but_the_api_server(cp, worker_net.node_ip)
        with open(os.path.join(worker_dir, "pki", "kubelet-client-ca.crt"), "rb") as f:
            assert cp.kubelet_client_ca is not None and f.read() == cp.kubelet_client_ca.cert_pem

        # The token is gone: it no longer authenticates, and the node keeps heartbeating with its certificate.
        assert admin.delete(f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{token_id}").status_code == 200
        as_token = httpx.get(f"{server}/api/v1/nodes", verify=False, headers={"Authorization": f"Bearer {token}"})
        assert as_token.status_code == 401
        lease_path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/worker-1"
        first_renew = admin.get(lease_path).json()["spec"]["renewTime"]
        wait_until("a lease renewal with the node certificate",
                   lambda: admin.get(lease_path).json()["spec"]["renewTime"] != first_renew, timeout=25)
        assert node_ready(admin, "worker-1")

        # The node credential is a node's: it may not touch another node (RBAC node restriction).
        context = ssl.create_default_context(cadata=cp.ca.cert_pem.decode())
        context.load_cert_chain(os.path.join(worker_dir, "pki", "kubelet-client.crt"),
                                os.path.join(worker_dir, "pki", "kubelet-client.key"))
        with httpx.Client(base_url=server, verify=context, timeout=10) as as_node:
            other = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "someone-else"}}
            assert as_node.post("/api/v1/nodes", json=other).status_code == 403
            assert as_node.get("/api/v1/nodes/worker-1").status_code == 200
            admin.post("/api/v1/nodes", json=other).raise_for_status()
            patch = {"metadata": {"labels": {"hijacked": "true"}}}
            assert as_node.patch("/api/v1/nodes/someone-else", json=patch,
                                 headers={"Content-Type": "application/merge-patch+json"}).status_code == 403
            assert as_node.patch("/api/v1/nodes/worker-1", json={"metadata": {"labels": {"mine": "true"}}},
                                 headers={"Content-Type": "application/merge-patch+json"}).status_code == 200
            deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}
            assert as_node.post("/apis/apps/v1/namespaces/default/deployments", json=deployment).status_code == 403
        admin.close()

        # The token's secret half and private keys reach no log of either machine, nor join's own output.
        secret_half = token.split(".")[1]
        assert secret_half not in joined.stdout + joined.stderr
        logs = [os.path.join(d, f) for d, _, files in os.walk(tmp_path) for f in files if f.endswith(".log")]
        assert any("apiserver" in os.path.basename(p) for p in logs) and any("kubelet" in p for p in logs), logs
        for path in logs:
            with open(path, errors="replace") as f:
                text = f.read()
            assert secret_half not in text and "PRIVATE KEY-----" not in text, f"{path} holds a secret"
    finally:
        stop_services(worker_dir)
        cp.stop()
