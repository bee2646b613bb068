"""Losing a worker machine of a cluster joined over the network (issue 7), with pod CIDRs from the cluster
(issue 6).

Four "machines" (network namespaces, each reachable only through its own IP): a control plane (etcd, HTTPS API
server with RBAC, controller-manager, scheduler) and three workers that each ran the printed `aiokube join`
(bootstrap token + CA hash, no --pod-cidr). Shown:
  * every joined Node gets a distinct podCIDR from the controller-manager's nodeipam, and every pod gets an IP
    inside the podCIDR of the node it runs on (the agent handed the CIDR to containerd's CNI config);
  * a Deployment spread over the three workers; one worker is killed (every process of the machine, SIGKILL by
    PID: containerd, shims, node agent, proxy, DNS and the pods' processes); the node lifecycle controller marks
    it unreachable and evicts its pods, and the Deployment's pods run again, all on the two survivors;
  * before that, host-gw routes built from those podCIDRs let one worker reach the pods on the others, and
    `kubectl logs` and `kubectl exec` (with its exit code) work on every worker's pods through the API server,
    while each node agent refuses plain HTTP, TLS without a client certificate and with any certificate other
    than the API server's kubelet-client one.

The controller-manager runs with a 20 s node-monitor grace period (2x the node agent's 10 s lease renewal) and a
1 s monitor period, and the pods tolerate the unreachable taint for 2 s (instead of the default 300 s), so the
whole test takes about a minute.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from aiokube.cluster import netns
from aiokube.node.images import build_images
from tests.e2e.join_harness import (
    Worker,
    assert_agent_refuses_all_but_the_api_server,
    in_netns,
    new_control_plane,
    node_ready,
    pytestmark,  # noqa: F401  (root, ip, nsenter, etcd, containerd, runc)
    start_control_plane,
    token_create,
    wait_until,
)
from tests.support.containerd import IMAGE_CACHE_DIR

REPLICAS = 6
GRACE_SECONDS = 20
TOLERATION_SECONDS = 2
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
def cluster_id() -> Iterator[str]:
    cid = "l" + uuid.uuid4().hex[:5]
    try:
        yield cid
    finally:
        netns.delete_cluster_network(cid)


def deployment() -> dict[str, Any]:
    labels = {"app": "web"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                # Spread, but never at the price of leaving pods pending when a worker is gone.
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                               "whenUnsatisfiable": "ScheduleAnyway", "labelSelector":
                                                   {"matchLabels": labels}}],
                # Fail over quickly: ride out an unreachable/not-ready node for 2 s, not the default 300 s.
                "tolerations": [{"key": key, "operator": "Exists", "effect": "NoExecute",
                                 "tolerationSeconds": TOLERATION_SECONDS}
                                for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")],
                # One line of log (the pod's hostname is its name) for `kubectl logs` through the API server.
                "containers": [{"name": "app", "image": "localhost/busybox:latest", "imagePullPolicy": "Never",
                                "command": ["sh", "-c", "echo started on $(hostname); exec sleep 3600"]}],
            }}},
    }


def running_pods(admin: httpx.Client) -> list[dict[str, Any]]:
    """The Deployment's live pods (not terminating) that run and are Ready."""
    pods = admin.get(PODS, params={"labelSelector": "app=web"}).json()["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")
            and p.get("status", {}).get("phase") == "Running" and p["status"].get("podIP")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]


def by_node(pods: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    placed: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        placed.setdefault(pod["spec"]["nodeName"], []).append(pod)
    return placed


def ready_condition(admin: httpx.Client, name: str) -> str | None:
    conditions = admin.get(f"/api/v1/nodes/{name}").json().get("status", {}).get("conditions", [])
    return next((c["status"] for c in conditions if c["type"] == "Ready"), None)


def assert_pod_ips_in_node_cidrs(pods: list[dict[str, Any]], cidrs: dict[str, str]) -> None:
    for pod in pods:
        node, ip = pod["spec"]["nodeName"], pod["status"]["podIP"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(cidrs[node]), (pod["metadata"]["name"], ip, node)


def routes_in(worker: Worker) -> dict[str, str]:
    """The proxy's host-gw routes (proto 250) in the worker machine's netns: destination -> gateway."""
    out = subprocess.run(in_netns(worker.net, ["ip", "-j", "-4", "route", "show", "proto", "250"]),
                         capture_output=True, text=True, timeout=10).stdout
    return {r["dst"]: r.get("gateway", "") for r in json.loads(out or "[]")}


def kubectl(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], capture_output=True, text=True,
                          timeout=30)


def ping_from(worker: Worker, ip: str) -> bool:
    return subprocess.run(in_netns(worker.net, ["busybox", "ping", "-c", "1", "-W", "2", ip]),
                          capture_output=True, timeout=10).returncode == 0


def test_killed_worker_pods_are_recreated_on_the_survivors(cluster_id: str, tmp_path) -> None:
    cp_net = netns.create_node_network(cluster_id, 1)
    workers = [Worker(f"{cluster_id}-w{i}", netns.create_node_network(cluster_id, i + 1), str(tmp_path / f"w{i}"))
               for i in (1, 2, 3)]
    cp = new_control_plane(str(tmp_path / "cp"))
    images = build_images(IMAGE_CACHE_DIR)
    started = time.monotonic()

    def phase(what: str) -> None:  # shown on failure (and with -s): where the minute goes
        print(f"{time.monotonic() - started:6.1f}s {what}")

    try:
        start_control_plane(cp, cp_net, extra_cm_args=(
            "--node-monitor-grace-period", f"{GRACE_SECONDS}s", "--node-monitor-period", "1s"))
        admin = cp.admin_client()
        phase("control plane up")
        command = token_create(cp, cp_net)
        assert "--pod-cidr" not in command
        # The three machines join at the same time, as VMs booted together would.
        with ThreadPoolExecutor(len(workers)) as pool:
            for output in pool.map(lambda w: w.join(command, images=images), workers):
                assert "assigned by the controller-manager" in output
        for worker in workers:
            wait_until(f"{worker.name} Ready", lambda w=worker: node_ready(admin, w.name), timeout=60)
        phase("three workers joined and Ready")

        # Pod CIDRs come from nodeipam: one distinct /24 of the cluster CIDR per node.
        cidrs = {w.name: admin.get(f"/api/v1/nodes/{w.name}").json()["spec"]["podCIDR"] for w in workers}
        assert len(set(cidrs.values())) == len(workers)
        for cidr in cidrs.values():
            network = ipaddress.ip_network(cidr)
            assert network.prefixlen == 24 and network.subnet_of(ipaddress.ip_network("10.244.0.0/16"))

        admin.post(DEPLOYMENTS, json=deployment()).raise_for_status()
        wait_until(f"{REPLICAS} web pods running", lambda: len(running_pods(admin)) == REPLICAS, timeout=60)
        before = running_pods(admin)
        phase(f"{REPLICAS} pods running")
        placed = by_node(before)
        assert set(placed) == {w.name for w in workers}, {n: len(p) for n, p in placed.items()}
        assert_pod_ips_in_node_cidrs(before, cidrs)

        # host-gw from the podCIDRs: each worker's proxy routes the other workers' podCIDRs via their node IPs,
        # so a worker reaches pods on the others directly.
        first = workers[0]
        wanted = {cidrs[w.name]: w.net.node_ip for w in workers[1:]}
        wait_until(f"host-gw routes on {first.name}", lambda: routes_in(first) == wanted, timeout=20)
        for pod in before:
            if pod["spec"]["nodeName"] != first.name:
                assert ping_from(first, pod["status"]["podIP"]), pod["metadata"]["name"]

        # Logs and exec on a joined worker's pod go through the API server, which reaches the node agent over
        # TLS with its kubelet-client certificate; nothing else gets an answer from the agent.
        for worker in workers:
            pod_name = placed[worker.name][0]["metadata"]["name"]
            logs = kubectl(cp.admin_kubeconfig, "logs", pod_name)
            assert logs.returncode == 0 and logs.stdout == f"started on {pod_name}\n", logs.stdout + logs.stderr
            execed = kubectl(cp.admin_kubeconfig, "exec", pod_name, "--", "sh", "-c", "hostname; exit 3")
            assert (execed.returncode, execed.stdout) == (3, f"{pod_name}\n"), execed.stderr
            assert_agent_refuses_all_but_the_api_server(cp, worker.net.node_ip)
            # The cluster DNS `join` started on this worker answers its pods (their resolv.conf names it).
            dns = kubectl(cp.admin_kubeconfig, "exec", pod_name, "--",
                          "nslookup", "kubernetes.default.svc.cluster.local")
            assert dns.returncode == 0 and worker.net.node_ip in dns.stdout and "10.96.0.1" in dns.stdout, \
                dns.stdout + dns.stderr
        phase("logs, exec, DNS and agent TLS checked on every worker")

        victim = max(workers, key=lambda w: len(placed[w.name]))
        survivors = {w.name for w in workers if w is not victim}
        lost = {p["metadata"]["name"] for p in placed[victim.name]}
        assert victim.kill()  # every process of the machine, by PID
        killed_at = time.monotonic()
        phase(f"{victim.name} killed")

        def recovered() -> bool:
            pods = running_pods(admin)
            return len(pods) == REPLICAS and {p["spec"]["nodeName"] for p in pods} <= survivors

        wait_until("the lost pods running again on the survivors", recovered,
                   timeout=GRACE_SECONDS + 60, interval=0.5)
        elapsed = time.monotonic() - killed_at
        phase("pods running again on the survivors")
        after = running_pods(admin)
        assert not lost & {p["metadata"]["name"] for p in after}  # replacements, not the old pods
        assert_pod_ips_in_node_cidrs(after, cidrs)
        assert ready_condition(admin, victim.name) == "Unknown"  # the node lifecycle controller's verdict
        taints = admin.get(f"/api/v1/nodes/{victim.name}").json()["spec"].get("taints", [])
        # NoExecute evicted the pods; NoSchedule kept their replacements (which tolerate NoExecute for 2 s) off it.
        assert {t["effect"] for t in taints if t["key"] == "node.kubernetes.io/unreachable"} == {"NoSchedule",
                                                                                                  "NoExecute"}
        for name in survivors:
            assert node_ready(admin, name)
        assert elapsed < GRACE_SECONDS + 40, f"recovery took {elapsed:.0f}s"
        admin.close()
    finally:
        for worker in workers:
            worker.cleanup()
        cp.stop()
        phase("cleaned up")
