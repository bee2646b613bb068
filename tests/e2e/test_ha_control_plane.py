"""An HA control plane across three "machines" (network namespaces, each reachable only by its own IP):
a 3-member etcd cluster (one member per machine), API servers on machines 1 and 2 listing every etcd member,
and a leader-elected controller-manager and scheduler next to each API server.

etcd speaks TLS only, to clients and to peers, and admits only certificates of its own CA (kubeadm's layout,
aiokube/cluster/etcd_pki.py): the API servers connect with their etcd client certificates; plain HTTP, a TLS
client without a certificate and one with a certificate of the cluster CA are all refused.

Killed at once (SIGKILL, as a machine failure): the etcd leader, and the API server, controller-manager and
scheduler of the machine whose controller-manager leads. The surviving API server keeps serving writes, the
standby controller-manager takes the Lease and reconciles a new Deployment, and the standby scheduler takes
the scheduler Lease.
"""

from __future__ import annotations

import functools
import os
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import httpx
import pytest

from aiokube.cluster import etcd_cluster, etcd_pki, netns, pki
from aiokube.cluster.process import spawn
from tests.e2e.test_join_network import (
    ROOT,
    ControlPlane,
    in_netns,
    new_control_plane,
    pytestmark,  # noqa: F401  (the same root/etcd/containerd requirements)
    start_components,
    wait_until,
    write_kubeconfig,
)

LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
LEASE_ARGS = ("--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s",
              "--leader-elect-retry-period", "1s")


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
                    etcd_client: etcd_pki.EtcdClientTls) -> str:
    """An HTTPS API server with client certificates and RBAC on `machine`, reaching etcd with its client cert."""
    serving = pki.issue_serving_cert(cp.ca, "kube-apiserver", dns_names=["kubernetes", "localhost"],
                                     ips=[machine.node_ip, "127.0.0.1"])
    cert_file, key_file = pki.write_pair(serving, cp.directory, f"{name}-serving")
    argv = [sys.executable, "-m", "apiserver", "--etcd-servers", etcd_servers,
            "--etcd-cafile", etcd_client.ca_file, "--etcd-certfile", etcd_client.cert_file,
            "--etcd-keyfile", etcd_client.key_file,
            "--etcd-prefix", f"/{os.path.basename(cp.directory)}", "--bind-address", machine.node_ip,
            "--tls-cert-file", cert_file, "--tls-private-key-file", key_file,
            "--client-ca-file", os.path.join(cp.directory, "ca.crt"), "--authorization-mode", "RBAC"]
    cp.processes.append(spawn(name, in_netns(machine, argv), os.path.join(cp.directory, f"{name}.log"), cwd=ROOT))
    server = f"https://{machine.node_ip}:6443"
    context = ssl.create_default_context(cadata=cp.ca.cert_pem.decode())
    wait_until(f"{name} /readyz", lambda: httpx.get(f"{server}/readyz", verify=context, timeout=2).status_code == 200,
               timeout=40)
    return server


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
    members = [etcd_cluster.EtcdMember(f"cp{i + 1}", m.node_ip, tls=True) for i, m in enumerate(machines)]
    cp = new_control_plane(str(tmp_path / "cp"))
    etcd_ca = etcd_pki.load_or_create_etcd_ca(str(tmp_path / "etcd-ca"))
    health = etcd_pki.write_client_files(etcd_ca, str(tmp_path / "etcd-ca"), name=etcd_pki.HEALTHCHECK_CLIENT,
                                         common_name=etcd_pki.HEALTHCHECK_CLIENT_CN)
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

        etcd_servers = etcd_cluster.client_urls(members)
        assert etcd_servers.startswith("https://")
        for i in (0, 1):
            etcd_client = etcd_pki.write_client_files(etcd_ca, str(tmp_path / f"pki-{members[i].name}"))
            cp.servers.append(start_apiserver(cp, machines[i], etcd_servers, f"apiserver-{i + 1}", etcd_client))
        write_kubeconfig(cp.admin_kubeconfig, cp.servers[0], cp.ca, pki.issue_admin_cert(cp.ca))
        for i in (0, 1):
            start_components(cp, machines[i], cp.servers[i], suffix=f"-{i + 1}", extra_cm_args=LEASE_ARGS,
                             extra_sched_args=("--leader-elect",))
        survivor = cp.admin_client(cp.servers[1])
        wait_until("a leading controller-manager", lambda: bool(holder(survivor, "aiokube-controller-manager")))
        wait_until("a leading scheduler", lambda: bool(holder(survivor, "aiokube-scheduler")))

        # The machine whose controller-manager leads loses its API server, controller-manager and scheduler.
        cm_leader = holder(survivor, "aiokube-controller-manager")
        sched_leader = holder(survivor, "aiokube-scheduler")
        leading = next(i for i in (1, 2)
                       if any(p.name == f"controllers-{i}" and cm_leader.endswith(f"_{p.pid}") for p in cp.processes))
        standby = 3 - leading
        etcd_leader = etcd_cluster.leader_of(members, client_tls=health)
        assert etcd_leader is not None
        kill(cp, f"etcd-{etcd_leader.name}")
        for name in (f"apiserver-{leading}", f"controllers-{leading}", f"scheduler-{leading}"):
            kill(cp, name)
        client = cp.admin_client(cp.servers[standby - 1])
        started = time.monotonic()

        # Writes keep working through the other API server (etcd still has a majority).
        configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-failover"},
                     "data": {"k": "v"}}
        wait_until("a write through the surviving API server",
                   lambda: client.post("/api/v1/namespaces/default/configmaps", json=configmap).status_code == 201,
                   timeout=20)
        assert client.get("/api/v1/namespaces/default/configmaps/after-failover").json()["data"] == {"k": "v"}
        new_leader = etcd_cluster.leader_of([m for m in members if m != etcd_leader], client_tls=health)
        assert new_leader is not None and new_leader != etcd_leader

        # The standby controller-manager takes over and reconciles new work.
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                               "template": {"metadata": {"labels": {"app": "web"}},
                                            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
        assert client.post("/apis/apps/v1/namespaces/default/deployments", json=deployment).status_code == 201
        wait_until("the standby controller-manager to create the ReplicaSet and pods",
                   lambda: len(client.get("/api/v1/namespaces/default/pods").json()["items"]) == 2, timeout=30)
        assert holder(client, "aiokube-controller-manager") not in ("", cm_leader)
        # The scheduler that led may have been either one; the one left must hold the Lease.
        standby_scheduler = next(p for p in cp.processes if p.name == f"scheduler-{standby}")
        wait_until("the standby scheduler to hold the Lease",
                   lambda: holder(client, "aiokube-scheduler").endswith(f"_{standby_scheduler.pid}"), timeout=30)
        assert sched_leader
        assert time.monotonic() - started < 45
        client.close()
        survivor.close()
    finally:
        cp.stop()
