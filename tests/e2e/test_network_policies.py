"""Traffic semantics across three node network namespaces, each programmed by its own `python -m proxy`
(node 2's in `--proxy-mode iptables`, the others nftables), with "pods" as addresses from each node's podCIDR
and listeners that answer with their own address and the peer address they saw.

Shows, with real connections:
- pod-to-pod traffic across nodes keeps the source IP (host-gw routes written by the proxies, no NAT);
- sessionAffinity ClientIP: one client always lands on the same backend (nftables and iptables nodes);
- externalTrafficPolicy Local: a NodePort only reaches that node's endpoint, and the client's IP is kept.
Every namespace, veth, bridge and route is removed at the end, also on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aiokube.cluster import netns
from aiokube.cluster.kubeconfig import write_kubeconfig
from tests.support.apiserver import running_apiserver

TOOLS = ("nft", "iptables", "ip", "nsenter")
pytestmark = [
    pytest.mark.etcd,
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(t) for t in TOOLS),
                       reason=f"SKIPPED LOUDLY: needs root and {', '.join(TOOLS)} to build network namespaces"),
]

REPO = Path(__file__).resolve().parents[2]
STICKY_IP = "10.96.101.10"
LOCAL_IP = "10.96.101.11"
LOCAL_NODE_PORT = 30090
LISTEN_PORT = 8080

# `ip port`: answer every connection with "<own ip> <peer ip>" (no name lookups: the namespaces have no DNS).
LISTENER = textwrap.dedent("""
    import socket, sys
    server = socket.create_server((sys.argv[1], int(sys.argv[2])))
    print("ready", flush=True)
    while True:
        conn, peer = server.accept()
        conn.sendall(f"{sys.argv[1]} {peer[0]}".encode())
        conn.close()
""")
# `source ip port count`: connect `count` times, print the answers as a JSON list ("" for a failure).
CLIENT = textwrap.dedent("""
    import json, socket, sys
    source, ip, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    answers = []
    for _ in range(count):
        try:
            with socket.create_connection((ip, port), timeout=2,
                                          source_address=(source, 0) if source != "-" else None) as conn:
                answers.append(conn.recv(100).decode())
        except OSError:
            answers.append("")
    print(json.dumps(answers))
""")


def pod_ip(index: int) -> str:
    return f"10.244.{index}.10"


def ask(node: netns.NodeNetwork, target: str, port: int, count: int, source: str = "-") -> list[list[str]]:
    """`count` connections from inside `node` (from `source`, a pod address there, or the node's own IP)."""
    result = subprocess.run(["nsenter", f"--net={node.netns_path}", sys.executable, "-c", CLIENT, source, target,
                             str(port), str(count)], capture_output=True, text=True, timeout=60, check=True)
    return [answer.split() for answer in json.loads(result.stdout)]


def wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def nodes() -> Iterator[list[netns.NodeNetwork]]:
    cluster_id = uuid.uuid4().hex[:6]
    try:
        created = [netns.create_node_network(cluster_id, index) for index in (1, 2, 3)]
        for node in created:  # each node's "pod": an address from its podCIDR
            subprocess.run(["nsenter", f"--net={node.netns_path}", "ip", "addr", "add", f"{pod_ip(node.index)}/32",
                            "dev", "lo"], check=True)
        yield created
    finally:
        netns.delete_cluster_network(cluster_id)
        assert netns.list_node_indexes(cluster_id) == []


@pytest.fixture
def listeners(nodes: list[netns.NodeNetwork]) -> Iterator[None]:
    processes = [subprocess.Popen(["nsenter", f"--net={node.netns_path}", sys.executable, "-c", LISTENER,
                                   pod_ip(node.index), str(LISTEN_PORT)], stdout=subprocess.PIPE, text=True)
                 for node in nodes]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def slice_for(name: str, service: str, index: int) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "tcp", "port": LISTEN_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [pod_ip(index)], "conditions": {"ready": True}, "nodeName": f"node{index}"}]}


def test_source_ip_affinity_and_local_traffic_policy(etcd_url: str, etcd_prefix: str, tmp_path: Path,
                                                     nodes: list[netns.NodeNetwork], listeners: None) -> None:
    node1, node2, node3 = nodes
    with running_apiserver(etcd_url, etcd_prefix) as server, httpx.Client(base_url=server, timeout=10) as api:
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(str(kubeconfig), server)
        for node in nodes:
            name = f"node{node.index}"
            api.post("/api/v1/nodes", json={"metadata": {"name": name},
                                            "spec": {"podCIDR": f"10.244.{node.index}.0/24"}}).raise_for_status()
            api.patch(f"/api/v1/nodes/{name}/status",
                      json={"status": {"addresses": [{"type": "InternalIP", "address": node.node_ip}]}},
                      headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
        port = {"name": "tcp", "port": 80, "targetPort": LISTEN_PORT, "protocol": "TCP"}
        api.post("/api/v1/namespaces/default/services", json={"metadata": {"name": "sticky"}, "spec": {
            "clusterIP": STICKY_IP, "ports": [port], "sessionAffinity": "ClientIP"}}).raise_for_status()
        api.post("/api/v1/namespaces/default/services", json={"metadata": {"name": "local"}, "spec": {
            "type": "NodePort", "clusterIP": LOCAL_IP, "externalTrafficPolicy": "Local",
            "ports": [{**port, "nodePort": LOCAL_NODE_PORT}]}}).raise_for_status()
        slices = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
        for index in (2, 3):
            api.post(slices, json=slice_for(f"sticky-{index}", "sticky", index)).raise_for_status()
        for index in (1, 2, 3):
            api.post(slices, json=slice_for(f"local-{index}", "local", index)).raise_for_status()

        proxies = [subprocess.Popen(
            [sys.executable, "-m", "proxy", "--kubeconfig", str(kubeconfig), "--node-name", f"node{node.index}",
             "--netns-exec", node.netns_path, "--cleanup-on-exit",
             "--proxy-mode", "iptables" if node.index == 2 else "nftables"],
            cwd=REPO, stderr=subprocess.PIPE, text=True) for node in nodes]
        try:
            # Pod to pod across nodes, over the proxies' host-gw routes: the receiver sees the sender's pod IP.
            wait_for(lambda: ask(node1, pod_ip(2), LISTEN_PORT, 1, pod_ip(1))[0] != [], 15)
            for sender, receiver in ((node1, node2), (node1, node3), (node3, node2)):
                answers = ask(sender, pod_ip(receiver.index), LISTEN_PORT, 3, pod_ip(sender.index))
                assert answers == [[pod_ip(receiver.index), pod_ip(sender.index)]] * 3

            # ClientIP affinity: a client sticks to one backend, on an nftables node and on the iptables node.
            for client in (node1, node2):
                wait_for(lambda c=client: ask(c, STICKY_IP, 80, 1, pod_ip(c.index))[0] != [], 15)
                answers = ask(client, STICKY_IP, 80, 20, pod_ip(client.index))
                backends = {answer[0] for answer in answers}
                assert len(backends) == 1 and backends <= {pod_ip(2), pod_ip(3)}, answers
            # Node 2 really runs the fallback: its rules are iptables chains, it has no nftables table.
            inside2 = ["nsenter", f"--net={node2.netns_path}"]
            assert "AIOKUBE-SVC-" in subprocess.run([*inside2, "iptables-save", "-t", "nat"], capture_output=True,
                                                    text=True).stdout
            assert subprocess.run([*inside2, "nft", "list", "table", "ip", "aiokube"],
                                  capture_output=True).returncode != 0

            # externalTrafficPolicy Local: each node's NodePort answers only from its own endpoint, and the
            # endpoint sees the outside client's own address (no masquerade).
            for target in (node1, node2):
                wait_for(lambda t=target: ask(node3, t.node_ip, LOCAL_NODE_PORT, 1)[0] != [], 15)
                answers = ask(node3, target.node_ip, LOCAL_NODE_PORT, 15)
                assert answers == [[pod_ip(target.index), node3.node_ip]] * 15, answers
        finally:
            for proxy in proxies:
                proxy.terminate()
            errors = []
            for proxy in proxies:
                try:
                    errors.append(proxy.communicate(timeout=15)[1])
                except subprocess.TimeoutExpired:
                    proxy.kill()  # never leave it behind
                    errors.append(proxy.communicate()[1])
        for proxy, stderr in zip(proxies, errors, strict=True):
            assert proxy.returncode == 0, stderr[-3000:]
        iptables_left = subprocess.run(["nsenter", f"--net={node2.netns_path}", "iptables-save"],
                                       capture_output=True, text=True).stdout
        assert "AIOKUBE" not in iptables_left  # --cleanup-on-exit removed the iptables chains too
