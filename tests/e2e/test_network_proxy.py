"""The service proxy end to end, in two node network namespaces on a private bridge: a real API server (on the
session's etcd), `python -m proxy` programming node 1's namespace, HTTP listeners in node 2's namespace.

Shows: ClusterIP traffic from node 1 is balanced over both endpoints; NodePort on node 1's IP answers from
node 2 (through DNAT + masquerade); an endpoint turned not-ready leaves the rotation within about a second;
host-gw routes to the other node's podCIDR appear (proto 250) and go when that Node is deleted; deleting the
Service removes its rules and `--cleanup` removes the table. Every namespace, veth, bridge, route and table is
removed, also on failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aiokube.cluster import netns
from aiokube.cluster.kubeconfig import write_kubeconfig
from tests.support.apiserver import running_apiserver

TOOLS = ("nft", "ip", "nsenter", "curl", "busybox")
pytestmark = [
    pytest.mark.etcd,
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(t) for t in TOOLS),
                       reason=f"SKIPPED LOUDLY: needs root and {', '.join(TOOLS)} to build network namespaces"),
]

CLUSTER_IP = "10.96.100.10"
NODE_PORT = 30080
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def network() -> Iterator[tuple[netns.NodeNetwork, netns.NodeNetwork]]:
    cluster_id = uuid.uuid4().hex[:6]
    try:
        yield netns.create_node_network(cluster_id, 1), netns.create_node_network(cluster_id, 2)
    finally:
        netns.delete_cluster_network(cluster_id)
        assert netns.list_node_indexes(cluster_id) == []


@pytest.fixture
def listeners(network: tuple[netns.NodeNetwork, netns.NodeNetwork], tmp_path: Path) -> Iterator[None]:
    """Two HTTP servers in node 2's namespace: port 8081 answers 'A', port 8082 answers 'B'."""
    node2 = network[1]
    processes = []
    try:
        for port, body in ((8081, "A"), (8082, "B")):
            root = tmp_path / body
            root.mkdir()
            (root / "index.html").write_text(body)
            processes.append(subprocess.Popen(
                # busybox httpd, not python's http.server: that one resolves its own address (a DNS lookup
                # that hangs in a namespace without a reachable resolver).
                ["nsenter", f"--net={node2.netns_path}", "busybox", "httpd", "-f", "-p", f"{node2.node_ip}:{port}",
                 "-h", str(root)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in (8081, 8082):
            wait_for(lambda p=port: curl(node2, f"http://{node2.node_ip}:{p}/") != "", 10)
        yield
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def curl(inside: netns.NodeNetwork, url: str) -> str:
    result = subprocess.run(["nsenter", f"--net={inside.netns_path}", "curl", "-s", "--max-time", "2", url],
                            capture_output=True, text=True, timeout=10)
    return result.stdout.strip()


def nft_list(node: netns.NodeNetwork) -> str:
    result = subprocess.run(["nsenter", f"--net={node.netns_path}", "nft", "list", "table", "ip", "aiokube"],
                            capture_output=True, text=True, timeout=10)
    return result.stdout


def wait_for(condition: object, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def endpoint_slice(name: str, ip: str, port: int, ready: bool = True) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}, "nodeName": "node2"}]}


def test_cluster_ip_node_port_readiness_and_removal(etcd_url: str, etcd_prefix: str, tmp_path: Path,
                                                    network: tuple[netns.NodeNetwork, netns.NodeNetwork],
                                                    listeners: None) -> None:
    node1, node2 = network
    with running_apiserver(etcd_url, etcd_prefix) as server, httpx.Client(base_url=server, timeout=10) as api:
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(str(kubeconfig), server)
        for name, index, node in (("node1", 1, node1), ("node2", 2, node2)):
            api.post("/api/v1/nodes", json={"metadata": {"name": name}, "spec": {"podCIDR": f"10.244.{index}.0/24"}}
                     ).raise_for_status()
            status = {"metadata": {"name": name},
                      "status": {"addresses": [{"type": "InternalIP", "address": node.node_ip}]}}
            api.patch(f"/api/v1/nodes/{name}/status", json=status,
                      headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
        api.post("/api/v1/namespaces/default/services", json={
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "clusterIP": CLUSTER_IP, "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": NODE_PORT}]}},
        ).raise_for_status()
        slices = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
        api.post(slices, json=endpoint_slice("web-a", node2.node_ip, 8081)).raise_for_status()
        api.post(slices, json=endpoint_slice("web-b", node2.node_ip, 8082)).raise_for_status()

        proxy = subprocess.Popen(
            [sys.executable, "-m", "proxy", "--kubeconfig", str(kubeconfig), "--node-name", "node1",
             "--netns-exec", node1.netns_path], cwd=REPO, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: curl(node1, f"http://{CLUSTER_IP}/") in ("A", "B"), 15)
            answers = {curl(node1, f"http://{CLUSTER_IP}/") for _ in range(30)}
            assert answers == {"A", "B"}  # balanced over both ready endpoints
            # NodePort on node 1, asked from node 2: DNAT to node 2's listeners, masqueraded back through node 1.
            assert {curl(node2, f"http://{node1.node_ip}:{NODE_PORT}/") for _ in range(20)} == {"A", "B"}
            routes = subprocess.run(["nsenter", f"--net={node1.netns_path}", "ip", "route", "show", "proto", "250"],
                                    capture_output=True, text=True).stdout
            assert f"10.244.2.0/24 via {node2.node_ip}" in routes and "10.244.1.0/24" not in routes

            # B turns not-ready: within about a second every request goes to A.
            body = api.get(f"{slices}/web-b").json()
            body["endpoints"][0]["conditions"]["ready"] = False
            api.put(f"{slices}/web-b", json=body).raise_for_status()
            started = time.monotonic()
            wait_for(lambda: "8082" not in nft_list(node1), 5)
            elapsed = time.monotonic() - started
            print(f"not-ready endpoint left node 1's rules {elapsed:.2f}s after the EndpointSlice write")
            assert elapsed < 1.5, f"rules changed only after {elapsed:.2f}s"
            assert {curl(node1, f"http://{CLUSTER_IP}/") for _ in range(20)} == {"A"}

            # node2's Node object goes away: node 1's host-gw route to its podCIDR goes with it.
            def node1_routes() -> str:
                return subprocess.run(["nsenter", f"--net={node1.netns_path}", "ip", "route", "show", "proto",
                                       "250"], capture_output=True, text=True, timeout=10).stdout

            api.delete("/api/v1/nodes/node2").raise_for_status()
            elapsed = wait_for(lambda: "10.244.2.0/24" not in node1_routes(), 5)
            print(f"route to the deleted node's podCIDR removed after {elapsed:.2f}s")

            # Deleting the Service removes its rules; traffic to the ClusterIP no longer reaches anything.
            api.delete("/api/v1/namespaces/default/services/web").raise_for_status()
            wait_for(lambda: CLUSTER_IP not in nft_list(node1) and str(NODE_PORT) not in nft_list(node1), 5)
            # Only the `kubernetes` Service (written by the API server at start-up) keeps endpoint chains.
            assert "default/web/" not in nft_list(node1)
            assert curl(node1, f"http://{CLUSTER_IP}/") == ""
        finally:
            proxy.terminate()
            try:
                _, stderr = proxy.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proxy.kill()  # never leave it behind, even when it hangs
                _, stderr = proxy.communicate()
        assert proxy.returncode == 0, stderr[-3000:]
        assert "table ip aiokube" in nft_list(node1)  # SIGTERM leaves the rules, like kube-proxy
        subprocess.run([sys.executable, "-m", "proxy", "--cleanup", "--netns-exec", node1.netns_path], cwd=REPO,
                       check=True, timeout=30)
        assert nft_list(node1) == ""
        assert "proto 250" not in subprocess.run(
            ["nsenter", f"--net={node1.netns_path}", "ip", "route", "show", "proto", "250"],
            capture_output=True, text=True).stdout
