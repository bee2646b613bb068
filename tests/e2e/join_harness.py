"""Machines made of network namespaces, joined as on real VMs: the helpers the join e2e tests share.

Every "machine" is a netns reachable only through its own IP on a bridge (aiokube.cluster.netns). A control
plane (etcd on its loopback, an HTTPS API server with client certificates and RBAC, controller-manager with the
CSR signer, scheduler) runs in one, with a kubelet-client CA published for joining nodes (their agents serve
HTTPS and accept only the API server's kubelet-client certificate); `aiokube token create` runs there;
`aiokube join --server https://CP:6443 --token … --ca-cert-hash sha256:…` runs in each worker's. A `Worker` knows
every process of its machine, so a test can kill them all (a machine failure) and still clean up everything
afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
import yaml

from aiokube.cluster import netns, pki, teardown
from aiokube.cluster.credentials import KUBELET_CLIENT_USER, kubelet_client_ca_manifests
from aiokube.cluster.join import load_processes
from aiokube.cluster.process import ManagedProcess, spawn
from aiokube.node.containerd import ContainerdConfig, start_containerd, stop_containerd

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "etcd", "containerd", "runc")),
    reason="SKIPPED LOUDLY: needs root with ip, nsenter, etcd, containerd and runc to build machines from netns")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API_PORT = 6443
CGROUP_ROOT = "/sys/fs/cgroup"


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
    # The CA whose only certificate is the API servers' kubelet-client one; joined node agents accept nothing else.
    kubelet_client_ca: pki.CertKey | None = None

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


def new_control_plane(directory: str) -> ControlPlane:
    ca = pki.create_ca()
    pki.write_pair(ca, directory, "ca")
    kubelet_client_ca = pki.create_ca("aiokube-kubelet-client-ca")
    pki.write_pair(kubelet_client_ca, directory, "kubelet-client-ca")
    pki.write_pair(pki.issue_client_cert(kubelet_client_ca, KUBELET_CLIENT_USER, [pki.MASTERS_GROUP]), directory,
                   "apiserver-kubelet-client")
    return ControlPlane(directory, [], ca, admin_kubeconfig=os.path.join(directory, "admin.conf"),
                        kubelet_client_ca=kubelet_client_ca)


def kubelet_client_args(cp: ControlPlane) -> list[str]:
    """The API server's --kubelet-* flags: verify node agents by the cluster CA (the kubelet-serving signer's)
    and present the kubelet-client certificate to them."""
    if cp.kubelet_client_ca is None:
        return []
    return ["--kubelet-certificate-authority", os.path.join(cp.directory, "ca.crt"),
            "--kubelet-client-certificate", os.path.join(cp.directory, "apiserver-kubelet-client.crt"),
            "--kubelet-client-key", os.path.join(cp.directory, "apiserver-kubelet-client.key")]


def publish_kubelet_client_ca(cp: ControlPlane) -> None:
    """What the control plane's set-up does (deploy/README.md): publish the kubelet-client CA for joining nodes."""
    assert cp.kubelet_client_ca is not None
    with cp.admin_client() as admin:
        for manifest in kubelet_client_ca_manifests(cp.kubelet_client_ca.cert_pem):
            kind = str(manifest["kind"])
            path = {"ConfigMap": "/api/v1/namespaces/kube-public/configmaps",
                    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-public/roles",
                    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-public/rolebindings"}[kind]
            response = admin.post(path, json=manifest)
            assert response.status_code in (201, 409), response.text


def start_etcd(cp: ControlPlane, ns: netns.NodeNetwork) -> str:
    """A single etcd member on the control-plane machine's loopback (nothing else can reach it)."""
    url = "http://127.0.0.1:2379"
    cp.processes.append(spawn("etcd", in_netns(ns, [
        shutil.which("etcd") or "etcd", "--data-dir", os.path.join(cp.directory, "etcd"), "--listen-client-urls",
        url, "--advertise-client-urls", url, "--listen-peer-urls", "http://127.0.0.1:2380",
        "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
        "--initial-cluster", "default=http://127.0.0.1:2380"]), os.path.join(cp.directory, "etcd.log")))
    return url


def start_apiserver(cp: ControlPlane, ns: netns.NodeNetwork, etcd_servers: str, name: str) -> str:
    serving = pki.issue_serving_cert(cp.ca, "kube-apiserver", dns_names=["kubernetes", "localhost"],
                                     ips=[ns.node_ip, "127.0.0.1"])
    cert_file, key_file = pki.write_pair(serving, cp.directory, f"{name}-serving")
    argv = [sys.executable, "-m", "apiserver", "--etcd-servers", etcd_servers,
            "--etcd-prefix", f"/{os.path.basename(cp.directory)}", "--bind-address", ns.node_ip,
            "--port", str(API_PORT), "--tls-cert-file", cert_file, "--tls-private-key-file", key_file,
            "--client-ca-file", os.path.join(cp.directory, "ca.crt"), "--authorization-mode", "RBAC",
            *kubelet_client_args(cp)]
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


def start_control_plane(cp: ControlPlane, ns: netns.NodeNetwork, *, extra_cm_args: tuple[str, ...] = ()) -> str:
    """etcd, API server, admin kubeconfig, controller-manager and scheduler on one machine; returns the server."""
    server = start_apiserver(cp, ns, start_etcd(cp, ns), "apiserver")
    cp.servers.append(server)
    write_kubeconfig(cp.admin_kubeconfig, server, cp.ca, pki.issue_admin_cert(cp.ca))
    publish_kubelet_client_ca(cp)
    start_components(cp, ns, server, extra_cm_args=extra_cm_args)
    return server


def token_create(cp: ControlPlane, ns: netns.NodeNetwork) -> list[str]:
    """`aiokube token create` on the control-plane machine: the printed join command, split."""
    created = subprocess.run(in_netns(ns, [sys.executable, "-m", "aiokube.cli", "token", "create",
                                           "--kubeconfig", cp.admin_kubeconfig, "--ttl", "1h"]),
                             capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert created.returncode == 0, created.stderr
    command = created.stdout.strip().split()
    assert command[:2] == ["aiokube", "join"], created.stdout
    return command


def node_ready(client: httpx.Client, name: str) -> bool:
    response = client.get(f"/api/v1/nodes/{name}")
    if response.status_code != 200:
        return False
    conditions = (response.json().get("status") or {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


AGENT_PORT = 10250


def agent_responds(url: str, context: ssl.SSLContext | None = None) -> int | None:
    """The HTTP status a node agent answers `url` with, or None when it refuses the connection (TLS handshake
    failure, a client certificate it does not accept, or plain HTTP on its TLS port)."""
    try:
        return httpx.get(url, verify=context if context is not None else False, timeout=5).status_code
    except httpx.TimeoutException:
        raise  # silence is not a refusal
    except httpx.TransportError as exc:
        print(f"{url}: refused: {exc!r}")
        return None


def assert_agent_refuses_all_but_the_api_server(cp: ControlPlane, node_ip: str) -> None:
    """A joined node agent serves HTTPS with a serving certificate for its IP from the cluster CA, and answers only
    a client with the API server's kubelet-client certificate: not plain HTTP, not TLS without a client
    certificate, and not TLS with another certificate of the cluster CA (here the admin's: system:masters)."""
    url = f"https://{node_ip}:{AGENT_PORT}/pods"
    assert agent_responds(f"http://{node_ip}:{AGENT_PORT}/pods") is None
    verifying = ssl.create_default_context(cadata=cp.ca.cert_pem.decode())  # checks the IP SAN too
    assert agent_responds(url, verifying) is None
    wrong = ssl.create_default_context(cadata=cp.ca.cert_pem.decode())
    wrong.load_cert_chain(*pki.write_pair(pki.issue_admin_cert(cp.ca), cp.directory, "not-kubelet-client"))
    assert agent_responds(url, wrong) is None
    assert cp.kubelet_client_ca is not None
    stranger_ca = pki.create_ca("aiokube-kubelet-client-ca")  # same name, other key: refused too
    stranger = ssl.create_default_context(cadata=cp.ca.cert_pem.decode())
    stranger.load_cert_chain(*pki.write_pair(pki.issue_client_cert(stranger_ca, KUBELET_CLIENT_USER,
                                                                   [pki.MASTERS_GROUP]), cp.directory, "stranger"))
    assert agent_responds(url, stranger) is None
    right = ssl.create_default_context(cadata=cp.ca.cert_pem.decode())
    right.load_cert_chain(os.path.join(cp.directory, "apiserver-kubelet-client.crt"),
                          os.path.join(cp.directory, "apiserver-kubelet-client.key"))
    assert agent_responds(url, right) == 200


# --- joined workers --------------------------------------------------------------------------------------------

@dataclass
class Worker:
    """A machine that ran `aiokube join`: its netns, data dir and node name (its cgroups are aiokube-<name>)."""

    name: str
    net: netns.NodeNetwork
    data_dir: str

    @property
    def cgroup_prefix(self) -> str:
        return f"aiokube-{self.name}"  # what join gives containerd and the node agent

    @property
    def containerd_config(self) -> ContainerdConfig:
        # As join writes it (join itself runs inside the netns; a restart from here enters it with nsenter).
        return ContainerdConfig(root_dir=os.path.join(self.data_dir, "containerd"), pod_cidr=None,
                                netns=self.net.netns_path, cgroup_prefix=self.cgroup_prefix, ip_masq=False)

    def join(self, command: list[str], *, extra: tuple[str, ...] = (), images: dict[str, str] | None = None) -> str:
        """Run the printed join command on this machine; returns its output. `images`: already built image
        tarballs (aiokube.node.images.build_images), copied where join builds them, so it only imports them."""
        if images:
            os.makedirs(os.path.join(self.data_dir, "images"), exist_ok=True)
            for path in images.values():
                shutil.copy(path, os.path.join(self.data_dir, "images", os.path.basename(path)))
        argv = [sys.executable, "-m", "aiokube.cli", *command[1:], "--node-name", self.name,
                "--data-dir", self.data_dir, "--timeout", "40", *extra]
        joined = subprocess.run(in_netns(self.net, argv), capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert joined.returncode == 0, joined.stdout + joined.stderr
        return joined.stdout

    def processes(self) -> list[ManagedProcess]:
        return load_processes(self.data_dir)

    def machine_pids(self) -> set[int]:
        """Every process of this machine: whatever runs in its netns (containerd, shims, node agent, proxy, DNS)
        and whatever runs in its pods' cgroups (pause and the containers, each in a pod netns of their own)."""
        out = subprocess.run(["ip", "netns", "pids", self.net.netns_name], capture_output=True, text=True).stdout
        pids = {int(p) for p in out.split()}
        for hierarchy in os.listdir(CGROUP_ROOT):
            top = os.path.join(CGROUP_ROOT, hierarchy, self.cgroup_prefix)
            for dirpath, _, files in os.walk(top):
                if "cgroup.procs" in files:
                    with contextlib.suppress(OSError), open(os.path.join(dirpath, "cgroup.procs")) as f:
                        pids.update(int(p) for p in f.read().split())
        return pids

    def kill(self, timeout: float = 10.0) -> set[int]:
        """A machine failure: SIGKILL every process of the machine by PID, until none is left."""
        killed: set[int] = set()
        deadline = time.monotonic() + timeout
        while pids := self.machine_pids():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: processes {sorted(pids)} survive SIGKILL")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
            time.sleep(0.1)
        return killed

    def cleanup(self) -> None:
        """Stop the services, remove every pod through CRI (a killed machine's containerd is started again for
        that: it tears down the pods' networks and mounts properly), stop containerd, then remove what is left."""
        for process in reversed(self.processes()):
            if process.name != "containerd":
                process.stop(timeout=5)
        containerd = next((p for p in self.processes() if p.name == "containerd"), None)
        config = self.containerd_config
        if os.path.exists(config.config_path):
            restarted = None
            if containerd is None or not containerd.alive():
                with contextlib.suppress(RuntimeError):
                    restarted = start_containerd(config)
            with contextlib.suppress(Exception):
                teardown.remove_all_pods(config.socket)
            if restarted is not None:
                stop_containerd(restarted)
        if containerd is not None:
            containerd.stop(timeout=10)
        with contextlib.suppress(AssertionError):
            self.kill()
        teardown.unmount_under(self.data_dir)
        teardown.remove_cgroups(self.cgroup_prefix)
