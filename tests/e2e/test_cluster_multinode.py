"""A 3-node cluster from `aiokube up --nodes 3` (one per module: every node its own network namespace with
containerd, node agent, DNS server and a service proxy), driven by the real kubectl.

Shows, in file order on the same cluster: a Deployment spreads over the three nodes; a pod on node 1 reaches
pods on nodes 2 and 3 by IP; a listener pod on node 3 sees the real source IP of pods on nodes 1 and 2 (by pod
IP and through a ClusterIP); `web.default.svc.cluster.local` (a named targetPort) answers from a pod and is
balanced over backends on every node; every node's cluster DNS answers for normal and headless Services; a
NodePort answers on every node IP; a pod whose readiness fails leaves the rules of all three nodes within 1.5 s
of its Ready=False (measured and printed); deleting a Service removes its rules on every node; `kubectl
logs` (plain, --tail, -f), `kubectl exec` (stdin, exit codes) and `kubectl top` (through the API server to the
node agents' TLS servers); a pod reaches the API server through the `kubernetes` Service over verified TLS;
no credentials → 401, and node-1's credential cannot touch a pod bound to node-2 (403); `aiokube image
import` of a freshly built OCI archive lands on every node and runs; `aiokube status`; `aiokube up` on the
same data dir brings the cluster back with the same CA; `aiokube down --purge` leaves no process, netns,
route, nft table, CNI chain, cgroup or mount behind.
"""

from __future__ import annotations

import concurrent.futures
import functools
import ipaddress
import json
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc

from aiokube.client import load_kubeconfig
from aiokube.cluster.credentials import ClusterCredentials
from aiokube.cluster.state import ClusterState
from aiokube.node.images import SCRIPTS_DIR
from tests.support.etcd import free_port
from tests.support.kubectl import kubectl_env, run_kubectl

TOOLS = ("etcd", "containerd", "runc", "ip", "nsenter", "nft", "iptables-save", "kubectl")
pytestmark = [
    pytest.mark.containerd, pytest.mark.kubectl, pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(t) for t in TOOLS),
                       reason=f"SKIPPED LOUDLY: needs root and {', '.join(TOOLS)} for a multi-node cluster"),
]

NODES = ("node-1", "node-2", "node-3")
REPLICAS = 6

# Every backend serves its own pod name at /index.html, so a response says which pod answered; readiness reads
# that file, so removing it takes the pod out of the rotation.
MANIFESTS = textwrap.dedent(f"""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: web}}
    spec:
      replicas: {REPLICAS}
      selector: {{matchLabels: {{app: web}}}}
      template:
        metadata: {{labels: {{app: web}}}}
        spec:
          containers:
          - name: httpd
            image: localhost/busybox:latest
            imagePullPolicy: Never
            command: ["sh", "-c", "hostname > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
            ports: [{{name: http, containerPort: 8080}}]
            readinessProbe: {{httpGet: {{path: /index.html, port: 8080}}, periodSeconds: 1, failureThreshold: 1}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {{name: web}}
    spec:
      selector: {{app: web}}
      ports: [{{name: http, port: 80, targetPort: http}}]  # named: resolved per pod through containerPorts
    ---
    apiVersion: v1
    kind: Service
    metadata: {{name: web-headless}}
    spec:
      clusterIP: None
      selector: {{app: web}}
      ports: [{{name: http, port: 8080}}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {{name: web-np}}
    spec:
      type: NodePort
      selector: {{app: web}}
      ports: [{{port: 80, targetPort: 8080}}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: talker}}
    spec:
      nodeName: node-2
      containers:
      - name: talk
        image: localhost/busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: peer-echo, labels: {{app: peer-echo}}}}
    spec:
      nodeName: node-3
      containers:
      - name: httpd
        image: localhost/busybox:latest
        imagePullPolicy: Never
        # A CGI answering the peer address httpd saw: shows whether traffic kept its source IP.
        command:
        - sh
        - -c
        - |
          mkdir -p /tmp/w/cgi-bin
          printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /tmp/w/cgi-bin/peer
          chmod +x /tmp/w/cgi-bin/peer
          exec httpd -f -p 0.0.0.0:8080 -h /tmp/w  # IPv4 socket: REMOTE_ADDR without ::ffff:
    ---
    apiVersion: v1
    kind: Service
    metadata: {{name: peer-echo}}
    spec:
      selector: {{app: peer-echo}}
      ports: [{{port: 80, targetPort: 8080}}]
""")


def host_leftovers(data_dir: str) -> dict[str, list[str]]:
    """What a cluster could leave on the host, line by line (compared before `up` and after `down`)."""
    def lines(argv: list[str], keep: Callable[[str], bool] = lambda _line: True) -> list[str]:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
        return sorted(line for line in out.splitlines() if keep(line))

    cgroups = sorted(p for root in ("/sys/fs/cgroup", *(os.path.join("/sys/fs/cgroup", h) for h in
                                                        os.listdir("/sys/fs/cgroup")))
                     if os.path.isdir(root) for p in (os.path.join(root, d) for d in os.listdir(root))
                     if os.path.basename(p).startswith("aiokube"))
    with open("/proc/self/mounts") as f:
        mounts = sorted(line for line in f if data_dir in line)
    return {
        "netns": lines(["ip", "netns", "list"]),
        "routes": lines(["ip", "route"]),
        "nft tables": lines(["nft", "list", "tables"]),
        "CNI chains": lines(["iptables-save"], lambda line: "CNI" in line),
        "cgroups": cgroups,
        "mounts": mounts,
    }


def aiokube(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aiokube.cli", *args], capture_output=True, text=True, timeout=300)


@dataclass
class Cluster:
    data_dir: str
    before: dict[str, list[str]]

    @property
    def state(self) -> ClusterState:
        state = ClusterState.load(self.data_dir)
        assert state is not None
        return state

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_kubectl(["kubectl", *args], kubeconfig=self.state.kubeconfig, home=self.data_dir, stdin=stdin,
                           check=check)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def sh(self, pod: str, script: str) -> str:
        return self.kubectl("exec", pod, "--", "sh", "-c", script).stdout

    def web_pods(self) -> list[dict[str, Any]]:
        return list(self.get("pods", "-l", "app=web")["items"])


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def http_get_script(host: str, port: int, count: int = 1, path: str = "/index.html") -> str:
    """busybox sh: `count` HTTP/1.0 requests through nc (busybox wget segfaults here), printing each body."""
    request = f"printf 'GET {path} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n' | nc -w 3 {host} {port} | tail -n 1"
    return f"for i in $(seq {count}); do {request}; done"


def http_get_from_host(ip: str, port: int) -> str:
    with socket.create_connection((ip, port), timeout=5) as conn:
        conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    return data.decode()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = str(tmp_path_factory.mktemp("multinode"))
    before = host_leftovers(data_dir)
    result = aiokube("up", "--data-dir", data_dir, "--nodes", str(len(NODES)), "--port", str(free_port()),
                     "--etcd-port", str(free_port()))
    try:
        assert result.returncode == 0, f"aiokube up failed:\n{result.stdout}\n{result.stderr}"
        assert "3/3 node(s) Ready" in result.stdout, result.stdout  # progress is shown while waiting
        cluster = Cluster(data_dir, before)
        cluster.kubectl("apply", "-f", "-", stdin=MANIFESTS)
        wait_until(f"{REPLICAS} ready web pods", lambda: len([p for p in cluster.web_pods() if ready(p)]) == REPLICAS,
                   timeout=90)
        yield cluster
    finally:
        if os.path.isdir(os.path.join(data_dir, "logs")):  # kept beside the purged data dir, for failures
            shutil.copytree(os.path.join(data_dir, "logs"), f"{data_dir}-logs", dirs_exist_ok=True)
        aiokube("down", "--purge", "--data-dir", data_dir)


def test_nodes_have_their_own_addresses_and_pod_cidrs(cluster: Cluster) -> None:
    nodes = {n["metadata"]["name"]: n for n in cluster.get("nodes")["items"]}
    assert sorted(nodes) == list(NODES)
    # nodeipam's allocations: distinct /24s of the cluster CIDR, the ones `up` routes from the host.
    cidrs = {name: ipaddress.IPv4Network(nodes[name]["spec"]["podCIDR"]) for name in NODES}
    assert len(set(cidrs.values())) == len(NODES)
    assert all(c.prefixlen == 24 and c.subnet_of(ipaddress.IPv4Network("10.244.0.0/16")) for c in cidrs.values())
    assert {n.name: n.pod_cidr for n in cluster.state.nodes} == {name: str(c) for name, c in cidrs.items()}
    for name in NODES:
        node = nodes[name]
        internal = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
        assert internal == [next(n.node_ip for n in cluster.state.nodes if n.name == name)]
    for pod in cluster.web_pods():
        pod_ip = ipaddress.ip_address(pod["status"]["podIP"])
        assert pod_ip in ipaddress.ip_network(nodes[pod["spec"]["nodeName"]]["spec"]["podCIDR"])


def test_deployment_spreads_over_every_node(cluster: Cluster) -> None:
    assert {p["spec"]["nodeName"] for p in cluster.web_pods()} == set(NODES)


def test_pod_on_node_1_reaches_pods_on_nodes_2_and_3_by_ip(cluster: Cluster) -> None:
    pods = cluster.web_pods()
    client = next(p for p in pods if p["spec"]["nodeName"] == "node-1")
    for node in ("node-2", "node-3"):
        target = next(p for p in pods if p["spec"]["nodeName"] == node)
        body = cluster.sh(client["metadata"]["name"], http_get_script(target["status"]["podIP"], 8080))
        assert body.strip() == target["metadata"]["name"]


def test_pod_traffic_keeps_its_source_ip_across_nodes(cluster: Cluster) -> None:
    wait_until("peer-echo to run", lambda: cluster.get("pod", "peer-echo")["status"].get("podIP")
               and ready(cluster.get("pod", "peer-echo")), timeout=60)
    echo_ip = cluster.get("pod", "peer-echo")["status"]["podIP"]
    for node in ("node-1", "node-2"):
        client = next(p for p in cluster.web_pods() if p["spec"]["nodeName"] == node)
        # By pod IP over the host-gw routes, and through the ClusterIP (DNAT only, no masquerade), the listener
        # on node 3 sees the client pod's own address.
        for host in (echo_ip, "peer-echo"):
            seen = cluster.sh(client["metadata"]["name"], http_get_script(host, 8080 if host == echo_ip else 80,
                                                                          path="/cgi-bin/peer")).strip()
            assert seen == client["status"]["podIP"], (node, host, seen)


def test_service_name_answers_and_balances_over_all_nodes(cluster: Cluster) -> None:
    pods = cluster.web_pods()
    node_of = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods}
    client = next(p for p in pods if p["spec"]["nodeName"] == "node-1")["metadata"]["name"]
    resolv = cluster.sh(client, "cat /etc/resolv.conf")
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv
    bodies = cluster.sh(client, http_get_script("web.default.svc.cluster.local", 80, count=30)).split()
    assert len(bodies) == 30 and set(bodies) <= set(node_of), bodies
    assert {node_of[b] for b in bodies} == set(NODES), f"not balanced over every node: {bodies}"
    # `web`'s targetPort is the container port's name: its EndpointSlices carry it resolved, which is the
    # number the proxies DNAT to (the traffic above).
    assert cluster.get("service", "web")["spec"]["ports"][0]["targetPort"] == "http"
    slices = cluster.get("endpointslices", "-l", "kubernetes.io/service-name=web")["items"]
    assert [s["ports"] for s in slices] == [[{"name": "http", "port": 8080, "protocol": "TCP"}]], slices


def test_dns_answers_for_normal_and_headless_services(cluster: Cluster) -> None:
    pods = cluster.web_pods()
    client = pods[0]["metadata"]["name"]
    cluster_ip = cluster.get("service", "web")["spec"]["clusterIP"]
    # Every node's DNS server, asked by a pod on that node (its resolv.conf names its own node).
    for node in cluster.state.nodes:
        asker = next(p for p in pods if p["spec"]["nodeName"] == node.name)["metadata"]["name"]
        assert f"nameserver {node.node_ip}" in cluster.sh(asker, "cat /etc/resolv.conf")
        normal = cluster.sh(asker, "nslookup web.default.svc.cluster.local")
        assert f"Server:\t\t{node.node_ip}" in normal and cluster_ip in normal, (node.name, normal)
    headless = cluster.sh(client, "nslookup web-headless.default.svc.cluster.local")
    assert {p["status"]["podIP"] for p in pods} <= set(headless.split()), headless
    # Through the search path (busybox nslookup tries every suffix and exits 1 when the last is NXDOMAIN).
    short = cluster.kubectl("exec", client, "--", "nslookup", "web", check=False).stdout
    assert "Name:\tweb.default.svc.cluster.local" in short and cluster_ip in short, short


def tls_request_through_pod(cluster: Cluster, pod: str, host: str, server_name: str, request: bytes,
                            timeout: float = 20.0) -> bytes:
    """One HTTPS request whose TCP connection is made inside `pod` (`kubectl exec -i POD -- nc HOST 443` carries
    the bytes) while the TLS client, verifying the server against the cluster CA as `server_name`, runs here.
    busybox's own TLS client cannot be used: it sends no signature_algorithms, so it only negotiates SHA-1
    signatures, which OpenSSL 3 servers refuse."""
    context = ssl.create_default_context(cafile=ClusterCredentials(cluster.data_dir).ca_cert)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    relay = subprocess.Popen(["kubectl", "exec", "-i", pod, "--", "nc", host, "443"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=kubectl_env(cluster.state.kubeconfig, cluster.data_dir))
    assert relay.stdin is not None and relay.stdout is not None
    deadline = time.monotonic() + timeout

    def exchange() -> None:
        """Send what TLS wrote, then hand TLS what the server sent back (EOF when the relay ends)."""
        assert relay.stdin is not None and relay.stdout is not None
        if pending := outgoing.read():
            relay.stdin.write(pending)
            relay.stdin.flush()
        readable, _, _ = select.select([relay.stdout], [], [], max(0.0, deadline - time.monotonic()))
        assert readable, "no answer through the pod"
        chunk = os.read(relay.stdout.fileno(), 65536)
        if chunk:
            incoming.write(chunk)
        else:
            incoming.write_eof()

    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                exchange()
        tls.write(request)
        response = b""
        while True:
            try:
                data = tls.read(65536)
            except ssl.SSLWantReadError:
                exchange()
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            if not data:
                break
            response += data
        return response
    finally:
        relay.stdin.close()  # nc, then the exec, end by themselves once the server closed: no abrupt disconnect
        try:
            relay.wait(timeout=10)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()


def test_pods_reach_the_api_server_through_the_kubernetes_service(cluster: Cluster) -> None:
    client = next(p for p in cluster.web_pods() if p["spec"]["nodeName"] == "node-2")["metadata"]["name"]
    # The serving certificate covers the Service's in-cluster name (and ClusterIP), so this verifies.
    for host in ("kubernetes.default.svc.cluster.local", cluster.get("service", "kubernetes")["spec"]["clusterIP"]):
        answer = tls_request_through_pod(cluster, client, host, "kubernetes.default.svc",
                                         b"GET /version HTTP/1.0\r\nHost: kubernetes\r\n\r\n").decode()
        assert answer.startswith("HTTP/1.1 200") and '"gitVersion"' in answer, answer
    # Without credentials (pods have no service-account token mounted yet) the API itself answers 401.
    answer = tls_request_through_pod(cluster, client, "kubernetes", "kubernetes",
                                     b"GET /api/v1/pods HTTP/1.0\r\nHost: kubernetes\r\n\r\n").decode()
    assert answer.startswith("HTTP/1.1 401"), answer


def node_api(cluster: Cluster, node: str) -> httpx.Client:
    """The API server as `system:node:<node>`, with the credential its agent, proxy and DNS use."""
    config = load_kubeconfig(ClusterCredentials(cluster.data_dir).node_kubeconfig(node))
    return httpx.Client(base_url=config.server, verify=config.ssl_context(), timeout=10)


def test_requests_without_credentials_get_401(cluster: Cluster) -> None:
    context = ssl.create_default_context(cafile=ClusterCredentials(cluster.data_dir).ca_cert)
    with httpx.Client(base_url=cluster.state.server, verify=context, timeout=10) as anonymous:
        assert anonymous.get("/api/v1/pods").status_code == 401
        assert anonymous.get("/healthz").status_code == 200


def test_a_node_credential_cannot_modify_another_nodes_pod(cluster: Cluster) -> None:
    own = next(p for p in cluster.web_pods() if p["spec"]["nodeName"] == "node-1")["metadata"]["name"]
    other = next(p for p in cluster.web_pods() if p["spec"]["nodeName"] == "node-2")["metadata"]["name"]
    merge = {"content-type": "application/merge-patch+json"}
    with node_api(cluster, "node-1") as node_1:
        # The pods bound to it: its agent writes their status (an empty patch changes nothing).
        assert node_1.patch(f"/api/v1/namespaces/default/pods/{own}/status", content=b"{}",
                            headers=merge).status_code == 200
        denied = node_1.patch(f"/api/v1/namespaces/default/pods/{other}/status", content=b"{}", headers=merge)
        assert denied.status_code == 403, denied.text
        assert 'node "node-1" can only update pod status for pods with spec.nodeName set to itself' in \
            denied.json()["message"]
        assert node_1.delete(f"/api/v1/namespaces/default/pods/{other}").status_code == 403
        assert node_1.patch("/api/v1/nodes/node-2/status", content=b"{}", headers=merge).status_code == 403
        assert node_1.get(f"/api/v1/namespaces/default/pods/{other}").status_code == 200  # reads are allowed
    assert cluster.get("pod", other)["metadata"].get("deletionTimestamp") is None


def test_node_port_answers_on_every_node_ip(cluster: Cluster) -> None:
    node_port = cluster.get("service", "web-np")["spec"]["ports"][0]["nodePort"]
    names = {p["metadata"]["name"] for p in cluster.web_pods()}
    for node in cluster.state.nodes:
        answer = http_get_from_host(node.node_ip, node_port)
        assert answer.startswith("HTTP/1.1 200"), answer
        assert answer.split()[-1] in names


def nft_rules(node_netns: str) -> str:
    return subprocess.run(["nsenter", f"--net={node_netns}", "nft", "list", "table", "ip", "aiokube"],
                          capture_output=True, text=True, timeout=30).stdout


class FirstEventWatch:
    """Notes the moment the API server publishes the first change of a list that satisfies `matches`. A watch (in
    a thread), not a poll: the moment is when the change was published, which is also when controllers and
    proxies watching the same list hear of it."""

    def __init__(self, cluster: Cluster, path: str, selector: dict[str, str],
                 matches: Callable[[dict[str, Any]], bool]) -> None:
        config = load_kubeconfig(cluster.state.kubeconfig)
        self._api = httpx.Client(base_url=config.server, verify=config.ssl_context(),
                                 timeout=httpx.Timeout(10, read=60))
        self._path, self._matches = path, matches
        self._params = {**selector, "watch": "1", "timeoutSeconds": "45",
                        "resourceVersion": self._api.get(path, params=selector).json()["metadata"]["resourceVersion"]}
        self.seen_at: float | None = None
        self._thread = threading.Thread(target=self._watch, name=f"watch {path}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        with self._api.stream("GET", self._path, params=self._params) as response:
            for line in response.iter_lines():
                event = json.loads(line) if line.strip() else {}
                if event.get("type") in ("ADDED", "MODIFIED") and self._matches(event["object"]):
                    self.seen_at = time.monotonic()
                    return

    def wait(self, timeout: float) -> float:
        self._thread.join(timeout)
        self._api.close()
        assert self.seen_at is not None, f"no matching change of {self._path} within {timeout:.0f}s"
        return self.seen_at


def ip_gone_from_rules_at(node_netns: str, ip: str, timeout: float) -> float:
    """The first moment `ip` is absent from the node's nft table (polled every ~20 ms)."""
    listed = re.compile(rf"(?<![\d.]){re.escape(ip)}(?![\d])")
    deadline = time.monotonic() + timeout
    while listed.search(nft_rules(node_netns)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{ip} still in the rules of {node_netns} after {timeout:.0f}s")
        time.sleep(0.02)
    return time.monotonic()


def test_pod_failing_readiness_leaves_the_rotation(cluster: Cluster) -> None:
    pods = cluster.web_pods()
    victim_pod = next(p for p in pods if p["spec"]["nodeName"] == "node-3")
    victim, victim_ip = victim_pod["metadata"]["name"], victim_pod["status"]["podIP"]
    client = next(p for p in pods if p["spec"]["nodeName"] == "node-1")["metadata"]["name"]
    nodes = cluster.state.nodes
    assert all(victim_ip in nft_rules(node.netns_path) for node in nodes)
    pod_watch = FirstEventWatch(cluster, "/api/v1/namespaces/default/pods",
                                {"fieldSelector": f"metadata.name={victim}"}, lambda pod: not ready(pod))
    slice_watch = FirstEventWatch(  # the middle step, to tell the controller's share from the proxies'
        cluster, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        {"labelSelector": "kubernetes.io/service-name=web"},
        lambda s: any(e.get("targetRef", {}).get("name") == victim and e["conditions"].get("ready") is False
                      for e in s.get("endpoints") or []))
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        gone = [pool.submit(ip_gone_from_rules_at, node.netns_path, victim_ip, 30) for node in nodes]
        cluster.sh(victim, "rm /tmp/index.html")  # its readiness probe fails from now on
        not_ready_at, slice_at = pod_watch.wait(30), slice_watch.wait(30)
        gone_at = {node.name: future.result() for node, future in zip(nodes, gone, strict=True)}
    # Ready=False published -> EndpointSlice controller -> every node's proxy -> nft: the last node counts.
    elapsed = {name: at - not_ready_at for name, at in gone_at.items()}
    print(f"pod Ready=False -> EndpointSlice {slice_at - not_ready_at:.2f}s -> its IP out of the rules: "
          + ", ".join(f"{n} {e:.2f}s" for n, e in elapsed.items()))
    assert max(elapsed.values()) <= 1.5, elapsed
    bodies = cluster.sh(client, http_get_script("web", 80, count=20)).split()
    assert len(bodies) == 20 and victim not in bodies, bodies
    assert "404" not in "".join(bodies)
    cluster.sh(victim, "hostname > /tmp/index.html")  # back in, for the tests after this one
    wait_until("the pod to be ready again", lambda: ready(cluster.get("pod", victim)), timeout=15)


def test_deleting_a_service_removes_its_rules_on_every_node(cluster: Cluster) -> None:
    service = cluster.get("service", "web-np")
    cluster_ip, node_port = service["spec"]["clusterIP"], str(service["spec"]["ports"][0]["nodePort"])

    for node in cluster.state.nodes:
        assert cluster_ip in nft_rules(node.netns_path)
    cluster.kubectl("delete", "service", "web-np")
    def dropped(node_netns: str) -> bool:
        current = nft_rules(node_netns)
        return cluster_ip not in current and node_port not in current

    for node in cluster.state.nodes:
        wait_until(f"{node.name} to drop the rules of web-np", functools.partial(dropped, node.netns_path),
                   timeout=10)
    with pytest.raises(OSError):
        http_get_from_host(cluster.state.nodes[0].node_ip, int(node_port))


def test_kubectl_logs_plain_tail_and_follow(cluster: Cluster) -> None:
    wait_until("talker to log", lambda: "line 3" in cluster.kubectl("logs", "talker").stdout, timeout=30)
    assert cluster.kubectl("logs", "talker").stdout.startswith("line 0\n")
    assert len(cluster.kubectl("logs", "talker", "--tail", "2").stdout.splitlines()) == 2
    follow = subprocess.Popen(["kubectl", "logs", "-f", "--tail", "1", "talker"], stdout=subprocess.PIPE, text=True,
                              env=kubectl_env(cluster.state.kubeconfig, cluster.data_dir))
    try:
        assert follow.stdout is not None
        first = int(follow.stdout.readline().split()[1])
        # New lines keep arriving while following (the pod prints one every 0.2 s).
        assert [int(follow.stdout.readline().split()[1]) for _ in range(3)] == [first + 1, first + 2, first + 3]
    finally:
        follow.kill()
        follow.wait()


def test_kubectl_exec_stdin_and_exit_codes(cluster: Cluster) -> None:
    assert cluster.kubectl("exec", "talker", "--", "echo", "hello").stdout == "hello\n"
    failed = cluster.kubectl("exec", "talker", "--", "sh", "-c", "echo oops >&2; exit 3", check=False)
    assert failed.returncode == 3
    assert "oops" in failed.stderr
    # `cat` ends only when kubectl's stdin close reaches it (relayed over SPDY, kubelet/spdy.py).
    echoed = cluster.kubectl("exec", "-i", "talker", "--", "cat", stdin="from stdin\nline 2\n")
    assert echoed.stdout == "from stdin\nline 2\n"
    counted = cluster.kubectl("exec", "-i", "talker", "--", "sh", "-c", "wc -c; exit 5", stdin="x" * 200_000,
                              check=False)
    assert (counted.returncode, counted.stdout.strip()) == (5, "200000")
    missing = cluster.kubectl("exec", "talker", "--", "/no/such/binary", check=False)
    assert missing.returncode != 0


def test_kubectl_top_nodes_and_pods(cluster: Cluster) -> None:
    nodes = cluster.kubectl("top", "nodes").stdout.splitlines()
    assert nodes[0].split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"], nodes
    assert sorted(line.split()[0] for line in nodes[1:]) == list(NODES)
    pods = cluster.kubectl("top", "pods").stdout.splitlines()
    assert pods[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"], pods
    assert {line.split()[0] for line in pods[1:]} == {p["metadata"]["name"] for p in cluster.web_pods()} | {
        "talker", "peer-echo"}
    for line in pods[1:]:
        cpu, memory = line.split()[1:]
        assert cpu.endswith("m") and memory.endswith("Mi"), line
    containers = cluster.kubectl("top", "pod", "talker", "--containers").stdout.splitlines()
    assert containers[1].split()[:2] == ["talker", "talk"], containers
    raw = json.loads(cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/talker")
                     .stdout)
    assert raw["kind"] == "PodMetrics" and raw["containers"][0]["name"] == "talk"
    assert int(raw["containers"][0]["usage"]["memory"].removesuffix("Ki")) > 0  # a shell is using some memory
    selected = cluster.kubectl("top", "pods", "-l", "app=web").stdout
    assert "talker" not in selected


def cri_image_tags(containerd_socket: str) -> set[str]:
    """Every repo tag the node's CRI image service lists (what the node agent sees)."""
    with grpc.insecure_channel(f"unix://{containerd_socket}") as channel:
        response = api_pb2_grpc.ImageServiceStub(channel).ListImages(api_pb2.ListImagesRequest(), timeout=10)
    return {tag for image in response.images for tag in image.repo_tags}


def test_image_import_lands_on_every_node_and_runs(cluster: Cluster, tmp_path: Any) -> None:
    # A tiny image built here (deploy/images' OCI builder): a static busybox and a file its CMD prints.
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    (rootfs / "hello.txt").write_text("hello from an imported image\n")
    archive = str(tmp_path / "tiny.tar")
    subprocess.run(["bash", str(SCRIPTS_DIR / "oci-image.sh"), str(rootfs), "v1", archive,
                    "/bin/busybox", "cat", "/hello.txt"], check=True, capture_output=True, timeout=60)
    imported = aiokube("image", "import", archive, "--base-name", "localhost/tiny", "--data-dir", cluster.data_dir)
    assert imported.returncode == 0, imported.stderr
    for node in cluster.state.nodes:
        assert f"into {node.name}" in imported.stdout
        assert "localhost/tiny:v1" in cri_image_tags(node.containerd_socket), node.name
    pods = "\n---\n".join(textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: tiny-{name}}}
        spec:
          nodeName: {name}
          restartPolicy: Never
          containers: [{{name: tiny, image: "localhost/tiny:v1", imagePullPolicy: Never}}]
        """) for name in NODES)
    cluster.kubectl("apply", "-f", "-", stdin=pods)
    def succeeded(pod: str) -> bool:
        return bool(cluster.get("pod", pod)["status"].get("phase") == "Succeeded")

    for name in NODES:
        wait_until(f"tiny-{name} to succeed", functools.partial(succeeded, f"tiny-{name}"), timeout=30)
        assert cluster.kubectl("logs", f"tiny-{name}").stdout == "hello from an imported image\n"
    cluster.kubectl("delete", "pod", *(f"tiny-{name}" for name in NODES), "--wait=false")


def test_status_shows_components_and_nodes(cluster: Cluster) -> None:
    status = aiokube("status", "--data-dir", cluster.data_dir)
    assert status.returncode == 0, status.stdout + status.stderr
    for name in ("etcd", "apiserver", "controllers", "scheduler", *(f"{c}-{n}" for n in NODES for c in
                                                                    ("containerd", "kubelet", "proxy", "clusterdns"))):
        assert f"{name} " in status.stdout, status.stdout
    for name in NODES:
        assert f"node {name}" in status.stdout and "Ready=True" in status.stdout


def test_up_again_brings_the_same_cluster_back(cluster: Cluster) -> None:
    uid = cluster.get("service", "web")["metadata"]["uid"]
    creds = ClusterCredentials(cluster.data_dir)
    with open(creds.ca_cert, "rb") as f:
        ca = f.read()
    old_admin = shutil.copy(cluster.state.kubeconfig, os.path.join(cluster.data_dir, "admin-before-re-up.conf"))
    old_containers = {p["status"]["containerStatuses"][0]["containerID"] for p in cluster.web_pods()}
    down = aiokube("down", "--data-dir", cluster.data_dir)
    assert down.returncode == 0, down.stderr
    assert not [p.name for p in cluster.state.processes if p.alive()]
    again = aiokube("up", "--data-dir", cluster.data_dir)  # as many nodes as last time
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert "3/3 node(s) Ready" in again.stdout, again.stdout
    assert cluster.get("service", "web")["metadata"]["uid"] == uid  # etcd data kept
    with open(creds.ca_cert, "rb") as f:
        assert f.read() == ca  # the same CA: kubeconfigs handed out before still work
    # (The node bridge's address may differ after a re-up, as other clusters' networks come and go: the server
    # comes from the current state, the credential and the CA from before.)
    before = run_kubectl(["kubectl", "--server", cluster.state.server, "get", "nodes"], kubeconfig=old_admin,
                         home=cluster.data_dir)
    assert before.returncode == 0, before.stderr

    def recreated() -> bool:  # ready in new containers (the stored status still says ready from before `down`)
        pods = [p for p in cluster.web_pods() if ready(p)]
        ids = {s.get("containerID") for p in pods for s in p["status"].get("containerStatuses", [])}
        return len(pods) == REPLICAS and not ids & old_containers

    wait_until("the web pods to run again in new containers", recreated, timeout=90)
    client = next(p for p in cluster.web_pods() if p["spec"]["nodeName"] == "node-1")["metadata"]["name"]
    assert cluster.sh(client, http_get_script("web", 80)).strip()


def ours(kind: str, line: str, cluster_id: str, node_ips: set[str]) -> bool:
    """Whether a leftover line could be this cluster's: other engineers' clusters and test networks come and go
    on the same host meanwhile, and only this cluster's pieces are `down`'s business. Network namespaces, the
    bridge (akb-<id>) and cgroups carry the cluster id; host routes to pod CIDRs name one of our node IPs."""
    if kind in ("netns", "cgroups"):
        return f"aiokube-{cluster_id}" in line
    if kind == "routes":
        return f"akb-{cluster_id}" in line or any(f"via {ip} " in line for ip in node_ips)
    return True


def test_down_purge_leaves_nothing_behind(cluster: Cluster) -> None:
    processes = cluster.state.processes
    cluster_id, node_ips = cluster.state.cluster_id, {n.node_ip for n in cluster.state.nodes}
    shutil.copytree(os.path.join(cluster.data_dir, "logs"), f"{cluster.data_dir}-logs", dirs_exist_ok=True)
    down = aiokube("down", "--purge", "--data-dir", cluster.data_dir)
    assert down.returncode == 0, down.stderr
    assert not [p.name for p in processes if p.alive()], "processes left after down"
    assert not os.path.exists(cluster.data_dir)
    after = host_leftovers(cluster.data_dir)
    # Only what appeared since before `up` counts (other clusters on the host may come and go meanwhile).
    new = {kind: sorted(line for line in set(after[kind]) - set(cluster.before[kind])
                        if ours(kind, line, cluster_id, node_ips)) for kind in after}
    assert new == {kind: [] for kind in after}, new
