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
import os
import shutil
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import yaml

from aiokube.cluster import netns, pki
from aiokube.cluster.join import stop_services
from aiokube.cluster.process import ManagedProcess, spawn

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "etcd", "containerd", "runc")),
    reason="SKIPPED LOUDLY: needs root with ip, nsenter, etcd, containerd and runc to build machines from netns")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API_PORT = 6443


def in_netns(ns: netns.NodeNetwork, argv: list[str]) -> list[str]:
    return ["nsenter", f"--net={ns.netns_path}", *argv]


def wait_until(what: str, check: Callable[[], bool], timeout: float = 30.0, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def write_kubeconfig(path: str, server: str, ca: pki.CertKey, client: pki.CertKey) -> str:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority-data": ca.cert_data}}],
              "users": [{"name": "u", "user": {"client-certificate-data": client.cert_data,
                                               "client-key-data": client.key_data}}],
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    os.chmod(path, 0o600)
    return path


@dataclass
class ControlPlane:
    """One control-plane "machine": its namespace, PKI, kubeconfigs and processes."""

    directory: str
    servers: list[str]
    ca: pki.CertKey
    admin_kubeconfig: str
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def server(self) -> str:
        return self.servers[0]

    def admin_client(self, server: str | None = None) -> httpx.Client:
        context = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        cert_file, key_file = pki.write_pair(pki.issue_admin_cert(self.ca), self.directory, "admin-client")
        context.load_cert_chain(cert_file, key_file)
        return httpx.Client(base_url=server or self.server, verify=context, timeout=10)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=5)


def start_apiserver(cp: ControlPlane, ns: netns.NodeNetwork, etcd_servers: str, name: str) -> str:
    serving = pki.issue_serving_cert(cp.ca, "kube-apiserver", dns_names=["kubernetes", "localhost"],
                                     ips=[ns.node_ip, "127.0.0.1"])
    cert_file, key_file = pki.write_pair(serving, cp.directory, f"{name}-serving")
    argv = [sys.executable, "-m", "apiserver", "--etcd-servers", etcd_servers,
            "--etcd-prefix", f"/{os.path.basename(cp.directory)}", "--bind-address", ns.node_ip,
            "--port", str(API_PORT), "--tls-cert-file", cert_file, "--tls-private-key-file", key_file,
            "--client-ca-file", os.path.join(cp.directory, "ca.crt"), "--authorization-mode", "RBAC"]
    cp.processes.append(spawn(name, in_netns(ns, argv), os.path.join(cp.directory, f"{name}.log"), cwd=ROOT))
    server = f"https://{ns.node_ip}:{API_PORT}"
    context = ssl.create_default_context(cadata=cp.ca.cert_pem.decode())
    wait_until(f"{name} /readyz", lambda: httpx.get(f"{server}/readyz", verify=context, timeout=2).status_code == 200,
               timeout=40)
    return server


def start_components(cp: ControlPlane, ns: netns.NodeNetwork, server: str, suffix: str = "",
                     extra_cm_args: tuple[str, ...] = (), extra_sched_args: tuple[str, ...] = ()) -> None:
    """controller-manager (with the CSR signer) and scheduler, each with its own client certificate."""
    cm = pki.issue_client_cert(cp.ca, pki.CONTROLLER_MANAGER_USER)
    scheduler = pki.issue_client_cert(cp.ca, pki.SCHEDULER_USER)
    cm_conf = write_kubeconfig(os.path.join(cp.directory, f"cm{suffix}.conf"), server, cp.ca, cm)
    sched_conf = write_kubeconfig(os.path.join(cp.directory, f"sched{suffix}.conf"), server, cp.ca, scheduler)
    ca_cert, ca_key = os.path.join(cp.directory, "ca.crt"), os.path.join(cp.directory, "ca.key")
    cm_argv = [sys.executable, "-m", "controllers", "--kubeconfig", cm_conf, "--cluster-signing-cert-file", ca_cert,
               "--cluster-signing-key-file", ca_key, *extra_cm_args]
    cp.processes.append(spawn(f"controllers{suffix}", in_netns(ns, cm_argv),
                              os.path.join(cp.directory, f"controllers{suffix}.log"), cwd=ROOT))
    sched_argv = [sys.executable, "-m", "scheduler", "--kubeconfig", sched_conf, *extra_sched_args]
    cp.processes.append(spawn(f"scheduler{suffix}", in_netns(ns, sched_argv),
                              os.path.join(cp.directory, f"scheduler{suffix}.log"), cwd=ROOT))


def new_control_plane(directory: str) -> ControlPlane:
    ca = pki.create_ca()
    pki.write_pair(ca, directory, "ca")
    return ControlPlane(directory, [], ca, admin_kubeconfig=os.path.join(directory, "admin.conf"))


@pytest.fixture
def cluster_id() -> Iterator[str]:
    cid = "j" + uuid.uuid4().hex[:5]
    try:
        yield cid
    finally:
        netns.delete_cluster_network(cid)


def node_ready(client: httpx.Client, name: str) -> bool:
    response = client.get(f"/api/v1/nodes/{name}")
    if response.status_code != 200:
        return False
    conditions = (response.json().get("status") or {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_worker_joins_over_tls_with_a_token_and_then_uses_its_own_certificate(cluster_id: str, tmp_path) -> None:
    cp_net = netns.create_node_network(cluster_id, 1)
    worker_net = netns.create_node_network(cluster_id, 2)
    cp = new_control_plane(str(tmp_path / "cp"))
    worker_dir = str(tmp_path / "worker")
    try:
        etcd_dir = str(tmp_path / "cp" / "etcd")
        etcd_url = "http://127.0.0.1:2379"  # loopback of the control-plane machine only
        cp.processes.append(spawn("etcd", in_netns(cp_net, [
            shutil.which("etcd") or "etcd", "--data-dir", etcd_dir, "--listen-client-urls", etcd_url,
            "--advertise-client-urls", etcd_url, "--listen-peer-urls", "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", "default=http://127.0.0.1:2380"]), os.path.join(cp.directory, "etcd.log")))
        server = start_apiserver(cp, cp_net, etcd_url, "apiserver")
        cp.servers.append(server)
        write_kubeconfig(cp.admin_kubeconfig, server, cp.ca, pki.issue_admin_cert(cp.ca))
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
        csrs = admin.get("/apis/certificates.k8s.io/v1/certificatesigningrequests").json()["items"]
        assert len(csrs) == 1
        csr = csrs[0]
        token_id = token.split(".")[0]
        assert csr["spec"]["username"] == f"system:bootstrap:{token_id}"
        assert "system:bootstrappers" in csr["spec"]["groups"]
        assert [c["type"] for c in csr["status"]["conditions"]] == ["Approved"] and csr["status"]["certificate"]

        # The node's kubeconfig carries its own certificate (CN system:node:worker-1, O system:nodes), no token.
        with open(os.path.join(worker_dir, "kubelet.conf")) as f:
            kubeconfig = yaml.safe_load(f)
        user = kubeconfig["users"][0]["user"]
        assert "token" not in user
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
        assert pki.identity_of(cert) == ("system:node:worker-1", ["system:nodes"])

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
    finally:
        stop_services(worker_dir)
        cp.stop()
