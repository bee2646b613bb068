"""An HA control plane across three "machines" (network namespaces, each reachable only by its own IP):
a 3-member etcd cluster (one member per machine), API servers on machines 1 and 2 listing every etcd member,
a leader-elected controller-manager and scheduler next to each API server, a TCP load balancer (haproxy, in a
"lb" machine of its own, health-checking each API server's /readyz) in front of the two API servers, and one
worker that joined through the load balancer's address (kubeadm's HA layout).

etcd speaks TLS only, to clients and to peers, and admits only certificates of its own CA (kubeadm's layout,
aiokube/cluster/etcd_pki.py): the API servers connect with their etcd client certificates; plain HTTP, a TLS
client without a certificate and one with a certificate of the cluster CA are all refused.

Machine 1's components start first, so its controller-manager and scheduler lead (checked by the Leases'
holderIdentity). Killed at once (SIGKILL, as a machine failure): machine 1's API server, controller-manager and
scheduler, and the etcd leader. Through the load balancer the cluster keeps working: writes succeed, the
standby controller-manager and scheduler take the Leases, the worker keeps renewing its node Lease and stays
Ready, a Deployment created after the failure runs its pods on the worker, and the `kubernetes` Service's
endpoints drop machine 1's API server once its lease runs out (apiserver/endpoint_leases.py).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from aiokube.cluster import etcd_cluster, etcd_pki, netns, pki
from aiokube.cluster.process import spawn
from aiokube.node.images import build_images
from tests.e2e.join_harness import (
    ROOT,
    ControlPlane,
    Worker,
    in_netns,
    kubelet_client_args,
    new_control_plane,
    node_ready,
    publish_kubelet_client_ca,
    pytestmark,  # noqa: F401  (the same root/etcd/containerd requirements)
    start_components,
    token_create,
    wait_until,
    write_kubeconfig,
)
from tests.support.containerd import IMAGE_CACHE_DIR

LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
LEASE_ARGS = ("--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s",
              "--leader-elect-retry-period", "1s")
ENDPOINT_LEASE_SECONDS = 3  # the API servers' --endpoint-lease-duration: a dead one leaves the endpoints fast
PODS = "/api/v1/namespaces/default/pods"
# haproxy in TCP mode (TLS passes through to the API servers, which authenticate the client certificates
# themselves), health-checking each server's /readyz over TLS every second; a connection refused by a dead
# server is redispatched to the other. Long client/server timeouts: watches are long-lived streams.
HAPROXY_CFG = """\
global
    log stdout format raw local0 info
defaults
    mode tcp
    log global
    option tcplog
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    retries 2
    option redispatch
frontend kube-apiserver
    bind {lb_ip}:6443
    default_backend kube-apiservers
backend kube-apiservers
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server check check-ssl verify none inter 1s fall 2 rise 1
{servers}
"""


@pytest.fixture
def cluster_id() -> Iterator[str]:
    cid = "h" + uuid.uuid4().hex[:5]
    try:
        yield cid
    finally:
        netns.delete_cluster_network(cid)


def holder(client: httpx.Client, lease: str) -> str:
    response = client.get(f"{LEASES}/{lease}")
    return str((response.json().get("spec") or {}).get("holderIdentity") or "") if response.status_code == 200 else ""


def start_apiserver(cp: ControlPlane, machine: netns.NodeNetwork, etcd_servers: str, name: str,
                    etcd_client: etcd_pki.EtcdClientTls, lb_ip: str) -> str:
    """An HTTPS API server with client certificates and RBAC on `machine`, reaching etcd with its client cert;
    its serving certificate also names the load balancer's address, which clients connect to."""
    serving = pki.issue_serving_cert(cp.ca, "kube-apiserver", dns_names=["kubernetes", "localhost"],
                                     ips=[machine.node_ip, lb_ip, "127.0.0.1"])
    cert_file, key_file = pki.write_pair(serving, cp.directory, f"{name}-serving")
    argv = [sys.executable, "-m", "apiserver", "--etcd-servers", etcd_servers,
            "--etcd-cafile", etcd_client.ca_file, "--etcd-certfile", etcd_client.cert_file,
            "--etcd-keyfile", etcd_client.key_file,
            "--etcd-prefix", f"/{os.path.basename(cp.directory)}", "--bind-address", machine.node_ip,
            "--tls-cert-file", cert_file, "--tls-private-key-file", key_file,
            "--client-ca-file", os.path.join(cp.directory, "ca.crt"), "--authorization-mode", "RBAC",
            "--endpoint-lease-duration", f"{ENDPOINT_LEASE_SECONDS}s", *kubelet_client_args(cp)]
    cp.processes.append(spawn(name, in_netns(machine, argv), os.path.join(cp.directory, f"{name}.log"), cwd=ROOT))
    server = f"https://{machine.node_ip}:6443"
    context = ssl.create_default_context(cadata=cp.ca.cert_pem.decode())
    wait_until(f"{name} /readyz", lambda: httpx.get(f"{server}/readyz", verify=context, timeout=2).status_code == 200,
               timeout=40)
    return server


def start_load_balancer(cp: ControlPlane, lb: netns.NodeNetwork, machines: list[netns.NodeNetwork]) -> str:
    """haproxy on the "lb" machine in front of the API servers of `machines`; returns its URL."""
    servers = "\n".join(f"    server cp{i} {m.node_ip}:6443" for i, m in enumerate(machines, start=1))
    config = os.path.join(cp.directory, "haproxy.cfg")
    with open(config, "w") as f:
        f.write(HAPROXY_CFG.format(lb_ip=lb.node_ip, servers=servers))
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    check = subprocess.run([haproxy, "-c", "-f", config], capture_output=True, text=True, timeout=10)
    assert check.returncode == 0, check.stdout + check.stderr
    # -db: stay in the foreground (no daemon), so the process is ours to stop.
    cp.processes.append(spawn("haproxy", in_netns(lb, [haproxy, "-db", "-f", config]),
                              os.path.join(cp.directory, "haproxy.log")))
    return f"https://{lb.node_ip}:6443"


def kubernetes_endpoints(client: httpx.Client) -> list[str]:
    endpoints = client.get("/api/v1/namespaces/default/endpoints/kubernetes").json()
    return sorted(a["ip"] for s in endpoints.get("subsets") or [] for a in s.get("addresses") or [])


def renew_time(client: httpx.Client, node: str) -> str:
    lease = client.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}").json()
    return str((lease.get("spec") or {}).get("renewTime") or "")


def running_on(client: httpx.Client, node: str) -> list[str]:
    """The Deployment's pods that run, Ready, on `node`."""
    pods = client.get(PODS, params={"labelSelector": "app=web"}).json()["items"]
    return [p["metadata"]["name"] for p in pods
            if p["spec"].get("nodeName") == node and (p.get("status") or {}).get("phase") == "Running"
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]


def status_answered(url: str, context: ssl.SSLContext | None) -> bool:
    """Whether the etcd member at `url` answers a status request (any HTTP reply) rather than refusing."""
    request = urllib.request.Request(f"{url}/v3/maintenance/status", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=3, context=context) as response:
            return bool(response.status == 200 and b"member_id" in response.read())
    except urllib.error.HTTPError:
        return True  # refused by HTTP, after TLS let it in: still not what a member must do
    except OSError:  # connection reset, TLS alert (certificate required / unknown CA), …
        return False


def assert_member_refuses_strangers(member: etcd_cluster.EtcdMember, health: etcd_pki.EtcdClientTls,
                                    cluster_ca: pki.CertKey, directory: str, log_path: str) -> None:
    assert status_answered(member.client_url, etcd_cluster.client_ssl_context(health))  # the control
    plain = f"http://{member.ip}:{member.client_port}"
    assert not status_answered(plain, None), "plain HTTP reached an etcd member"
    certless = ssl.create_default_context(cafile=health.ca_file)
    assert not status_answered(member.client_url, certless), "a client without a certificate reached etcd"
    # A certificate of the cluster CA (any node or user holds one) must not open etcd.
    outsider = ssl.create_default_context(cafile=health.ca_file)
    outsider.load_cert_chain(*pki.write_pair(pki.issue_admin_cert(cluster_ca), directory, "cluster-ca-admin"))
    assert not status_answered(member.client_url, outsider), "a cluster-CA certificate reached etcd"
    # …each for the right reason, as the member logs it (a moment after the client saw the refusal).
    def logged(reason: str) -> bool:
        with open(log_path) as f:
            return reason in f.read()
    for reason in ("first record does not look like a TLS handshake", "client didn't provide a certificate",
                   "certificate signed by unknown authority"):
        wait_until(f"etcd to log a refusal for: {reason}", functools.partial(logged, reason), timeout=5)


def kill(cp: ControlPlane, name: str) -> None:
    process = next(p for p in cp.processes if p.name == name)
    os.kill(process.pid, signal.SIGKILL)
    process.stop(timeout=5)  # reaps it


def test_ha_survives_losing_the_etcd_leader_an_apiserver_and_the_leading_components(cluster_id: str,
                                                                                   tmp_path) -> None:
    machines = [netns.create_node_network(cluster_id, i) for i in (1, 2, 3)]
    lb = netns.create_node_network(cluster_id, 4)
    worker = Worker(f"{cluster_id}-w", netns.create_node_network(cluster_id, 5), str(tmp_path / "worker"))
    members = [etcd_cluster.EtcdMember(f"cp{i + 1}", m.node_ip, tls=True) for i, m in enumerate(machines)]
    cp = new_control_plane(str(tmp_path / "cp"))
    etcd_ca = etcd_pki.load_or_create_etcd_ca(str(tmp_path / "etcd-ca"))
    health = etcd_pki.write_client_files(etcd_ca, str(tmp_path / "etcd-ca"), name=etcd_pki.HEALTHCHECK_CLIENT,
                                         common_name=etcd_pki.HEALTHCHECK_CLIENT_CN)
    images = build_images(IMAGE_CACHE_DIR)
    begun = time.monotonic()

    def phase(what: str) -> None:  # shown on failure (and with -s): where the time goes
        print(f"{time.monotonic() - begun:6.1f}s {what}")

    try:
        for member, machine in zip(members, machines, strict=True):
            member_dir = str(tmp_path / f"pki-{member.name}")  # what each machine holds in /etc/aiokube/pki/etcd
            cp.processes.append(etcd_cluster.start_member(
                member, members, data_dir=str(tmp_path / f"etcd-{member.name}"),
                log_path=os.path.join(cp.directory, f"etcd-{member.name}.log"),
                wrap=["nsenter", f"--net={machine.netns_path}"],
                tls=etcd_pki.write_member_files(etcd_ca, member_dir, name=member.name, ip=member.ip)))
            cp.processes[-1].name = f"etcd-{member.name}"
        wait_until("an etcd leader", lambda: etcd_cluster.leader_of(members, client_tls=health) is not None,
                   timeout=30)
        assert_member_refuses_strangers(members[0], health, cp.ca, str(tmp_path / "strangers"),
                                        os.path.join(cp.directory, f"etcd-{members[0].name}.log"))
        phase("etcd cluster up")

        etcd_servers = etcd_cluster.client_urls(members)
        assert etcd_servers.startswith("https://")
        lb_url = start_load_balancer(cp, lb, machines[:2])
        clients = [etcd_pki.write_client_files(etcd_ca, str(tmp_path / f"pki-{members[i].name}")) for i in (0, 1)]
        with ThreadPoolExecutor(2) as pool:  # both start at once, as on two machines
            direct = list(pool.map(lambda i: start_apiserver(cp, machines[i], etcd_servers, f"apiserver-{i + 1}",
                                                             clients[i], lb.node_ip), (0, 1)))
        cp.servers[:] = [lb_url, *direct]  # every client of the test goes through the load balancer
        write_kubeconfig(cp.admin_kubeconfig, lb_url, cp.ca, pki.issue_admin_cert(cp.ca))
        client = cp.admin_client(lb_url)
        wait_until("the load balancer to pass requests", lambda: client.get("/readyz").status_code == 200)
        publish_kubelet_client_ca(cp)
        phase("API servers behind the load balancer")

        # Machine 1's components start first and take both Leases; machine 2's then stand by.
        start_components(cp, machines[0], direct[0], suffix="-1", extra_cm_args=LEASE_ARGS,
                         extra_sched_args=("--leader-elect",))
        wait_until("a leading controller-manager", lambda: bool(holder(client, "aiokube-controller-manager")))
        wait_until("a leading scheduler", lambda: bool(holder(client, "aiokube-scheduler")))
        start_components(cp, machines[1], direct[1], suffix="-2", extra_cm_args=LEASE_ARGS,
                         extra_sched_args=("--leader-elect",))
        leaders = {p.name: p.pid for p in cp.processes if p.name in ("controllers-1", "scheduler-1")}
        cm_leader, sched_leader = holder(client, "aiokube-controller-manager"), holder(client, "aiokube-scheduler")
        assert cm_leader.endswith(f"_{leaders['controllers-1']}"), cm_leader
        assert sched_leader.endswith(f"_{leaders['scheduler-1']}"), sched_leader

        # One worker joins through the load balancer's address, exactly as on a VM.
        command = token_create(cp, machines[0])
        assert command[command.index("--server") + 1] == lb_url, command
        worker.join(command, images=images)
        wait_until(f"{worker.name} Ready", lambda: node_ready(client, worker.name), timeout=60)
        with open(os.path.join(worker.data_dir, "kubelet.conf")) as f:
            assert f"server: {lb_url}" in f.read()  # the node agent talks to the load balancer, not a machine
        wait_until("both API servers in the kubernetes endpoints", lambda: kubernetes_endpoints(client) == sorted(
            m.node_ip for m in machines[:2]), timeout=10)
        phase("worker joined and Ready")

        # Machine 1 fails (API server, the leading controller-manager and scheduler), and so does the etcd leader.
        etcd_leader = etcd_cluster.leader_of(members, client_tls=health)
        assert etcd_leader is not None
        kill(cp, f"etcd-{etcd_leader.name}")
        for name in ("apiserver-1", "controllers-1", "scheduler-1"):
            kill(cp, name)
        started, killed_at = time.monotonic(), time.time()
        phase(f"machine 1 and etcd {etcd_leader.name} killed")

        def haproxy_logged(line: str) -> bool:
            with open(os.path.join(cp.directory, "haproxy.log")) as f:
                return line in f.read()
        # The balancer's health check takes machine 1's API server out (2 failed checks, 1 s apart).
        wait_until("haproxy to mark cp1 DOWN", lambda: haproxy_logged("kube-apiservers/cp1 is DOWN"), timeout=10)

        # Writes keep working through the load balancer (the other API server; etcd still has a majority).
        configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-failover"},
                     "data": {"k": "v"}}
        wait_until("a write through the load balancer",
                   lambda: client.post("/api/v1/namespaces/default/configmaps", json=configmap).status_code == 201,
                   timeout=20)
        assert client.get("/api/v1/namespaces/default/configmaps/after-failover").json()["data"] == {"k": "v"}
        new_leader = etcd_cluster.leader_of([m for m in members if m != etcd_leader], client_tls=health)
        assert new_leader is not None and new_leader != etcd_leader

        # A Deployment created after the failure is reconciled by the standby controller-manager, scheduled by
        # the standby scheduler and run on the worker.
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                               "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                                   "terminationGracePeriodSeconds": 1,
                                   "containers": [{"name": "c", "image": "localhost/busybox:latest",
                                                   "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}}}}
        assert client.post("/apis/apps/v1/namespaces/default/deployments", json=deployment).status_code == 201
        wait_until("the new Deployment's 2 pods Running on the worker",
                   lambda: len(running_on(client, worker.name)) == 2, timeout=45, interval=0.5)
        phase("new Deployment running on the worker")
        standby = {p.name: p.pid for p in cp.processes if p.name in ("controllers-2", "scheduler-2")}
        assert holder(client, "aiokube-controller-manager").endswith(f"_{standby['controllers-2']}")
        assert holder(client, "aiokube-scheduler").endswith(f"_{standby['scheduler-2']}")

        # The worker stayed Ready: its node agent renewed the node Lease after the failure, through the LB.
        wait_until("a node Lease renewal after the failure",
                   lambda: renew_time(client, worker.name) > time.strftime("%Y-%m-%dT%H:%M:%S",
                                                                          time.gmtime(killed_at + 1)), timeout=20)
        assert node_ready(client, worker.name)
        # Machine 1's API server left the `kubernetes` endpoints when its lease ran out.
        wait_until("the dead API server to leave the kubernetes endpoints",
                   lambda: kubernetes_endpoints(client) == [machines[1].node_ip], timeout=ENDPOINT_LEASE_SECONDS + 5)
        assert time.monotonic() - started < 60
        client.close()
    finally:
        worker.cleanup()
        cp.stop()
        phase("cleaned up")
