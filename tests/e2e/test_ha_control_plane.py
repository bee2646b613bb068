"""An HA control plane across three "machines" (network namespaces, each reachable only by its own IP):
a 3-member etcd cluster (one member per machine), API servers on machines 1 and 2 listing every etcd member,
and a leader-elected controller-manager and scheduler next to each API server.

Killed at once (SIGKILL, as a machine failure): the etcd leader, and the API server, controller-manager and
scheduler of the machine whose controller-manager leads. The surviving API server keeps serving writes, the
standby controller-manager takes the Lease and reconciles a new Deployment, and the standby scheduler takes
the scheduler Lease.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from aiokube.cluster import etcd_cluster, netns, pki
from tests.e2e.test_join_network import (
    ControlPlane,
    new_control_plane,
    pytestmark,  # noqa: F401  (the same root/etcd/containerd requirements)
    start_apiserver,
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


def kill(cp: ControlPlane, name: str) -> None:
    process = next(p for p in cp.processes if p.name == name)
    os.kill(process.pid, signal.SIGKILL)
    process.stop(timeout=5)  # reaps it


def test_ha_survives_losing_the_etcd_leader_an_apiserver_and_the_leading_components(cluster_id: str,
                                                                                   tmp_path) -> None:
    machines = [netns.create_node_network(cluster_id, i) for i in (1, 2, 3)]
    members = [etcd_cluster.EtcdMember(f"cp{i + 1}", m.node_ip) for i, m in enumerate(machines)]
    cp = new_control_plane(str(tmp_path / "cp"))
    try:
        for member, machine in zip(members, machines, strict=True):
            cp.processes.append(etcd_cluster.start_member(
                member, members, data_dir=str(tmp_path / f"etcd-{member.name}"),
                log_path=os.path.join(cp.directory, f"etcd-{member.name}.log"),
                wrap=["nsenter", f"--net={machine.netns_path}"]))
            cp.processes[-1].name = f"etcd-{member.name}"
        wait_until("an etcd leader", lambda: etcd_cluster.leader_of(members) is not None, timeout=30)

        etcd_servers = etcd_cluster.client_urls(members)
        for i in (0, 1):
            cp.servers.append(start_apiserver(cp, machines[i], etcd_servers, f"apiserver-{i + 1}"))
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
        etcd_leader = etcd_cluster.leader_of(members)
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
        new_leader = etcd_cluster.leader_of([m for m in members if m != etcd_leader])
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
