"""Real traffic through a 3-node pod network, with one real `python -m proxy` per node (nftables, then the
iptables fallback): pod-to-pod across nodes keeps the source IP, ClientIP session affinity pins each client to
one backend, externalTrafficPolicy Local NodePorts only reach the node's own endpoints (source kept) while
a node without one drops the traffic, and a Service's only endpoint reaching its own ClusterIP (hairpin) gets
its answer masqueraded as the node.

Topology (everything in namespaces this test creates, removed at the end, also on failure):

    host bridge akb-<id> (172.30.X.1/24, from aiokube.cluster.netns)
      node1..3   netns with eth0 172.30.X.1N, a pod bridge cbr0 10.244.N.1/24, ip_forward; the node's proxy
                 programs its rules and host-gw routes (10.244.M.0/24 via node M) from the API server
      outside    one more netns on the host bridge (index 9, no proxy): a client from outside the cluster
    pods         netns akp-<id>-<name>, eth0 on their node's cbr0, default route via 10.244.N.1; each runs a TCP
                 listener on :8080 that answers "<its own IP> <the peer address it saw>"

Services and EndpointSlices are written straight to a real API server (on the session's etcd): this is about the
data path, not the EndpointSlice controller. test_network_policies.py runs a mixed cluster instead (one iptables
node among nftables ones, `--cleanup-on-exit`) with pod addresses on the nodes' loopback; here every node runs
the same backend, pods sit behind a node bridge as CNI builds them, and the drops are checked too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from aiokube.cluster import netns
from aiokube.cluster.kubeconfig import write_kubeconfig
from tests.support.apiserver import running_apiserver
from tests.support.etcd import EtcdProcess

TOOLS = ("nft", "iptables", "ip", "nsenter")
pytestmark = [
    pytest.mark.etcd,
    pytest.mark.timeout(180),
    pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(t) for t in TOOLS),
                       reason=f"SKIPPED LOUDLY: needs root and {', '.join(TOOLS)} to build network namespaces"),
]

REPO = Path(__file__).resolve().parents[2]
HAIRPIN_IP = "10.96.50.14"  # a Service whose only endpoint is web3
OUTSIDE_INDEX = 9  # a namespace on the nodes' bridge that is not a node: the off-cluster client
LISTENER = """
import socket, sys
own = sys.argv[1]
server = socket.create_server((own, 8080), backlog=64)
print("ready", flush=True)
while True:
    conn, peer = server.accept()
    conn.sendall(f"{own} {peer[0]}".encode())
    conn.close()
"""
# Makes `count` connections in a row and prints what each answered: "<backend> <peer it saw>", or "timeout"
# (dropped) or "refused" (rejected).
CLIENT = """
import json, socket, sys
ip, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
answers = []
for _ in range(count):
    try:
        with socket.create_connection((ip, port), timeout=timeout) as conn:
            answers.append(conn.recv(100).decode())
    except TimeoutError:
        answers.append("timeout")
    except ConnectionRefusedError:
        answers.append("refused")
print(json.dumps(answers))
"""


@dataclass(frozen=True)
class Pod:
    name: str
    node: int
    ip: str
    netns_path: str


# name -> (node index, last octet of its IP in 10.244.<node>.0/24)
PODS = {"client1": (1, 10), "web2a": (2, 10), "web2b": (2, 11), "web3": (3, 10), "client3": (3, 20)}
BACKENDS = ("web2a", "web2b", "web3")


@dataclass
class Cluster:
    mode: str
    nodes: dict[int, netns.NodeNetwork]
    outside: netns.NodeNetwork
    pods: dict[str, Pod]
    api: httpx.Client

    def ask(self, source_netns: str, ip: str, port: int, count: int, timeout: float = 5.0) -> list[str]:
        result = subprocess.run(["nsenter", f"--net={source_netns}", sys.executable, "-c", CLIENT, ip, str(port),
                                 str(count), str(timeout)], capture_output=True, text=True,
                                timeout=count * timeout + 20)
        assert result.returncode == 0, result.stderr
        answers: list[str] = json.loads(result.stdout)
        return answers


def run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, timeout=30)


def in_netns(path: str, *argv: str) -> None:
    run("nsenter", f"--net={path}", *argv)


def add_pod(cluster_id: str, name: str, node: netns.NodeNetwork, last_octet: int) -> Pod:
    """A pod: its own netns with eth0 on the node's cbr0 (what the CNI bridge plugin builds, hairpinMode on)."""
    pod_netns = f"akp-{cluster_id}-{name}"
    run("ip", "netns", "add", pod_netns)
    path = f"{netns.NETNS_DIR}/{pod_netns}"
    node_side = f"v{name}"[:15]
    in_netns(node.netns_path, "ip", "link", "add", node_side, "type", "veth", "peer", "name", "eth0",
             "netns", pod_netns)
    in_netns(node.netns_path, "ip", "link", "set", node_side, "master", "cbr0", "up")
    # hairpinMode, as aiokube's CNI config asks the bridge plugin for: with br_netfilter, a pod's packet DNATed
    # back to that same pod leaves through the bridge port it came in by, which the bridge refuses otherwise.
    in_netns(node.netns_path, "ip", "link", "set", node_side, "type", "bridge_slave", "hairpin", "on")
    ip = f"10.244.{node.index}.{last_octet}"
    in_netns(path, "ip", "link", "set", "lo", "up")
    in_netns(path, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
    in_netns(path, "ip", "link", "set", "eth0", "up")
    in_netns(path, "ip", "route", "add", "default", "via", f"10.244.{node.index}.1")
    return Pod(name, node.index, ip, path)


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


def service(name: str, cluster_ip: str, *, node_port: int | None = None, **spec: object) -> dict:
    port: dict[str, object] = {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}
    if node_port:
        port["nodePort"] = node_port
    return {"metadata": {"name": name},
            "spec": {"type": "NodePort" if node_port else "ClusterIP", "clusterIP": cluster_ip,
                     "selector": {"app": name}, "ports": [port], **spec}}


def endpoint_slice(service_name: str, pods: list[Pod]) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-1", "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [pod.ip], "conditions": {"ready": True}, "nodeName": f"node{pod.node}"}
                          for pod in pods]}


def create_api_objects(api: httpx.Client, cluster: Cluster) -> None:
    for index, node in cluster.nodes.items():
        name = f"node{index}"
        api.post("/api/v1/nodes", json={"metadata": {"name": name},
                                        "spec": {"podCIDR": f"10.244.{index}.0/24"}}).raise_for_status()
        api.patch(f"/api/v1/nodes/{name}/status",
                  json={"status": {"addresses": [{"type": "InternalIP", "address": node.node_ip}]}},
                  headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
    backends = [cluster.pods[name] for name in BACKENDS]
    on_node2 = [cluster.pods["web2a"], cluster.pods["web2b"]]
    for body, endpoints in (
            (service("web", "10.96.50.10"), backends),
            (service("sticky", "10.96.50.11", sessionAffinity="ClientIP",
                     sessionAffinityConfig={"clientIP": {"timeoutSeconds": 300}}), backends),
            (service("local", "10.96.50.12", node_port=30181, externalTrafficPolicy="Local"), on_node2),
            (service("spread", "10.96.50.13", node_port=30182, externalTrafficPolicy="Cluster"), on_node2),
            (service("hairpin", HAIRPIN_IP), [cluster.pods["web3"]])):
        api.post("/api/v1/namespaces/default/services", json=body).raise_for_status()
        api.post("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                 json=endpoint_slice(body["metadata"]["name"], endpoints)).raise_for_status()


@pytest.fixture(scope="module", params=["nftables", "iptables"])
def cluster(request: pytest.FixtureRequest, etcd: EtcdProcess, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Cluster]:
    mode: str = request.param
    cluster_id = uuid.uuid4().hex[:6]
    workdir = tmp_path_factory.mktemp(f"traffic-{mode}")
    processes: list[subprocess.Popen[str]] = []
    proxies: list[subprocess.Popen[str]] = []
    pod_names: list[str] = []
    try:
        nodes = {index: netns.create_node_network(cluster_id, index) for index in (1, 2, 3)}
        outside = netns.create_node_network(cluster_id, OUTSIDE_INDEX)
        for index, node in nodes.items():
            in_netns(node.netns_path, "ip", "link", "add", "cbr0", "type", "bridge")
            in_netns(node.netns_path, "ip", "addr", "add", f"10.244.{index}.1/24", "dev", "cbr0")
            in_netns(node.netns_path, "ip", "link", "set", "cbr0", "up")
        pods = {}
        for name, (index, octet) in PODS.items():
            pod_names.append(f"akp-{cluster_id}-{name}")
            pods[name] = add_pod(cluster_id, name, nodes[index], octet)
        for pod in pods.values():
            listener = subprocess.Popen(["nsenter", f"--net={pod.netns_path}", sys.executable, "-c", LISTENER,
                                         pod.ip, str(workdir)], stdout=subprocess.PIPE, text=True)
            processes.append(listener)
            assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        with running_apiserver(etcd.url, f"/traffic-{cluster_id}") as server, \
                httpx.Client(base_url=server, timeout=10) as api:
            state = Cluster(mode, nodes, outside, pods, api)
            create_api_objects(api, state)
            kubeconfig = workdir / "kubeconfig"
            write_kubeconfig(str(kubeconfig), server)
            for index, node in nodes.items():
                proxies.append(subprocess.Popen(
                    [sys.executable, "-m", "proxy", "--kubeconfig", str(kubeconfig), "--node-name", f"node{index}",
                     "--netns-exec", node.netns_path, "--proxy-mode", mode, "--debounce", "0.05"],
                    cwd=REPO, stderr=subprocess.DEVNULL, text=True))
            # Every node programmed: each node's NodePort for the Cluster-policy Service answers from outside.
            for node in nodes.values():
                wait_for(lambda n=node: " " in state.ask(outside.netns_path, n.node_ip, 30182, 1, 1.0)[0],
                         30, f"{mode} proxy of {node.netns_name} programming its rules")
            yield state
            stop(proxies)
            for node in nodes.values():  # --cleanup leaves nothing of either backend behind
                subprocess.run([sys.executable, "-m", "proxy", "--cleanup", "--netns-exec", node.netns_path],
                               cwd=REPO, check=True, timeout=30, capture_output=True)
                assert "aiokube" not in nsenter_output(node, "nft", "list", "ruleset").lower()
                assert "AIOKUBE" not in nsenter_output(node, "iptables-save")
                assert nsenter_output(node, "ip", "route", "show", "proto", "250").strip() == ""
    finally:
        stop(proxies)
        stop(processes)
        for name in pod_names:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        netns.delete_cluster_network(cluster_id)
    assert netns.list_node_indexes(cluster_id) == []
    assert not [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
                if n.startswith(f"akp-{cluster_id}")]


def stop(processes: list[subprocess.Popen[str]]) -> None:
    for process in reversed(processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
            process.wait()
    processes.clear()


def nsenter_output(node: netns.NodeNetwork, *argv: str) -> str:
    return subprocess.run(["nsenter", f"--net={node.netns_path}", *argv], capture_output=True, text=True,
                          timeout=30).stdout


def backend_and_peer(answers: list[str]) -> list[tuple[str, str]]:
    assert all(" " in answer for answer in answers), answers  # every request answered
    return [(answer.split()[0], answer.split()[1]) for answer in answers]


def test_pod_to_pod_across_nodes_keeps_the_source_ip(cluster: Cluster) -> None:
    client = cluster.pods["client1"]
    for target in ("web2a", "web3"):  # by pod IP, over host-gw routes the proxies programmed
        [(backend, peer)] = backend_and_peer(cluster.ask(client.netns_path, cluster.pods[target].ip, 8080, 1))
        assert (backend, peer) == (cluster.pods[target].ip, client.ip)
    # Through a ClusterIP too: DNAT only, never masquerade, for pod-to-Service traffic.
    answers = backend_and_peer(cluster.ask(client.netns_path, "10.96.50.10", 80, 30))
    assert {peer for _, peer in answers} == {client.ip}
    assert {backend for backend, _ in answers} == {cluster.pods[name].ip for name in BACKENDS}  # p(miss) < 1e-5


def test_client_ip_affinity_pins_each_client_to_one_backend(cluster: Cluster) -> None:
    backends = {cluster.pods[name].ip for name in BACKENDS}
    for client in (cluster.pods["client1"], cluster.pods["client3"]):
        answers = backend_and_peer(cluster.ask(client.netns_path, "10.96.50.11", 80, 40))
        chosen = {backend for backend, _ in answers}
        assert len(chosen) == 1 and chosen <= backends, f"{client.name} spread over {chosen}"
        assert {peer for _, peer in answers} == {client.ip}
    # The same clients against the Service without affinity do spread (all 40 on one of 3 backends: 3^-39).
    assert len({b for b, _ in backend_and_peer(cluster.ask(cluster.pods["client1"].netns_path,
                                                               "10.96.50.10", 80, 40))}) > 1


def test_external_traffic_policy_local_reaches_only_local_endpoints(cluster: Cluster) -> None:
    outside, nodes = cluster.outside, cluster.nodes
    node2_pods = {cluster.pods["web2a"].ip, cluster.pods["web2b"].ip}
    # The node with the endpoints: only its own pods answer, and they see the real client (no masquerade).
    answers = backend_and_peer(cluster.ask(outside.netns_path, nodes[2].node_ip, 30181, 30))
    assert {backend for backend, _ in answers} == node2_pods
    assert {peer for _, peer in answers} == {outside.node_ip}
    # Nodes without a local endpoint drop (no hop to node 2, no reject either).
    for index in (1, 3):
        assert cluster.ask(outside.netns_path, nodes[index].node_ip, 30181, 2, 1.0) == ["timeout", "timeout"]
    # …but a node's own traffic to its NodePort is not external (kube-proxy's short circuit): node 3 reaches
    # node 2's endpoints through it, masqueraded as itself.
    answers = backend_and_peer(cluster.ask(nodes[3].netns_path, nodes[3].node_ip, 30181, 10))
    assert {backend for backend, _ in answers} <= node2_pods and {peer for _, peer in answers} == {nodes[3].node_ip}
    # Contrast, same endpoints with policy Cluster: node 3 forwards to node 2, masquerading as itself.
    answers = backend_and_peer(cluster.ask(outside.netns_path, nodes[3].node_ip, 30182, 10))
    assert {backend for backend, _ in answers} <= node2_pods
    assert {peer for _, peer in answers} == {nodes[3].node_ip}


def test_hairpin_a_pod_reaching_itself_through_its_service_is_masqueraded(cluster: Cluster) -> None:
    pod = cluster.pods["web3"]
    answers = backend_and_peer(cluster.ask(pod.netns_path, HAIRPIN_IP, 80, 5))
    # It answers itself, and sees the node's address on the pod bridge (cbr0), not its own IP: without the
    # masquerade the reply would go pod-to-pod directly and never match the connection the pod opened.
    node_address_on_the_pod_bridge = f"10.244.{pod.node}.1"
    assert answers == [(pod.ip, node_address_on_the_pod_bridge)] * 5, answers
