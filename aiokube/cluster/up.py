"""`aiokube up`: start etcd, the API server, the controller-manager, the scheduler and N nodes, then wait.

Every component is a separate process in its own session (it outlives the CLI), logging to DATA_DIR/logs/.
The control plane runs in the host's network namespace, listening on the node bridge's host address; node N
gets its own network namespace (aiokube.cluster.netns) holding its containerd (and so its pods), node agent and
DNS server, plus a service proxy on the host that programs that namespace. Pod CIDR 10.244.N.0/24 is routed
host-gw: the proxies route between nodes, `up` routes the host to every node.
Running `up` again on the same data dir brings the same cluster back with its state (etcd keeps its data).

Secure by default (aiokube.cluster.credentials has the files): the API server serves HTTPS with client
certificates from the cluster CA, RBAC and the node restriction, so requests without credentials get 401; the
admin kubeconfig is a system:masters certificate, the controller-manager and the scheduler have their own
identities, and each node's agent, proxy and DNS server use that node's `system:node:<name>` credential. Node
agents serve HTTPS with a certificate for their node IP and accept only the API server's kubelet-client
certificate (from a CA of its own); the API server verifies them against the cluster CA (kubectl logs/exec/top).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.util
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

from aiokube.client import load_kubeconfig
from aiokube.cluster import pki
from aiokube.cluster.credentials import ClusterCredentials, write_control_plane_credentials, write_node_credentials
from aiokube.cluster.netns import ROUTE_PROTO, NodeNetwork, create_node_network
from aiokube.cluster.process import ManagedProcess, adopt, spawn
from aiokube.cluster.state import ClusterState, NodeState

Progress = Callable[[str], None]

KUBELET_PORT = 10250  # every node has its own netns, so each agent gets the standard port on its node IP
DNS_PORT = 53


class UpError(Exception):
    """A prerequisite is missing or a component failed to start; the message says what to do."""


def component_available(module: str) -> bool:
    """True when `python -m module` exists in this installation (components land one issue at a time)."""
    return importlib.util.find_spec(f"{module}.__main__") is not None


def check_prerequisites(nodes: int) -> None:
    missing = [b for b in ("etcd",) if shutil.which(b) is None]
    if nodes and component_available("kubelet"):
        missing += [b for b in ("containerd", "runc", "ctr", "umoci", "ip", "nsenter", "nft")
                    if shutil.which(b) is None]
        if not os.path.isdir("/usr/lib/cni"):
            missing.append("CNI plugins (/usr/lib/cni)")
        if os.geteuid() != 0:
            raise UpError("nodes need root (containerd, network namespaces, cgroups): run as root or use --nodes 0")
    if missing:
        raise UpError(f"missing: {', '.join(missing)} — run `bash deploy/install.sh` first")


def _wait(what: str, check: Callable[[], bool], timeout: float, process: ManagedProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise UpError(f"{what}: the process exited; see {process.log}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise UpError(f"{what}: not ready after {timeout:.0f}s" + (f"; see {process.log}" if process else ""))


def admin_http(state: ClusterState, timeout: float = 5.0) -> httpx.Client:
    """A client for the cluster's API server as the admin of its kubeconfig (CA-verified, client certificate)."""
    config = load_kubeconfig(state.kubeconfig)
    return httpx.Client(base_url=config.server, verify=config.ssl_context(), timeout=timeout)


def _ready_nodes(api: httpx.Client, since: float = 0.0) -> set[str]:
    """Nodes whose Ready condition is True and was heartbeated at or after `since` (epoch seconds): after a
    restart the stored conditions still say Ready from before, so only a fresh heartbeat counts."""
    response = api.get("/api/v1/nodes")
    response.raise_for_status()
    ready = set()
    for node in response.json().get("items", []):
        for cond in node.get("status", {}).get("conditions", []):
            if cond.get("type") == "Ready" and cond.get("status") == "True" and \
                    _epoch(cond.get("lastHeartbeatTime")) >= since:
                ready.add(node["metadata"]["name"])
    return ready


def _epoch(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _start_etcd(state: ClusterState) -> ManagedProcess:
    client = f"http://127.0.0.1:{state.etcd_client_port}"
    peer = f"http://127.0.0.1:{state.etcd_peer_port}"
    argv = [
        shutil.which("etcd") or "etcd",
        "--name", "aiokube",
        "--data-dir", os.path.join(state.data_dir, "etcd"),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"aiokube={peer}",
        "--experimental-watch-progress-notify-interval", "5s",
    ]
    proc = spawn("etcd", argv, os.path.join(state.data_dir, "logs", "etcd.log"))
    _wait("etcd", lambda: b"true" in httpx.get(f"{client}/health", timeout=2).content, 30, proc)
    return proc


def _python_component(state: ClusterState, module: str, args: list[str]) -> ManagedProcess:
    argv = [sys.executable, "-m", module, *args]
    return spawn(module, argv, os.path.join(state.data_dir, "logs", f"{module}.log"))


def cluster_id_for(data_dir: str) -> str:
    """A short stable id for the data dir: it names the cluster's netns, bridge and veths (so clusters from
    different data dirs never clash, and `down` finds exactly this cluster's pieces)."""
    return hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:6]


def _in_netns(net: NodeNetwork, argv: list[str]) -> list[str]:
    # nsenter (not `ip netns exec`, which remounts /sys): it execs argv, so the recorded PID is argv's.
    return ["nsenter", f"--net={net.netns_path}", *argv]


def _add_host_route(pod_cidr: str, node_ip: str) -> None:
    """host-gw on the host: the host side (node agents' peers, tests, the API server) reaches pod IPs. Tagged with
    the proxy's route proto so `delete_cluster_network` removes it with the cluster."""
    subprocess.run(["ip", "route", "replace", pod_cidr, "via", node_ip, "proto", ROUTE_PROTO],
                   check=True, capture_output=True, timeout=30)


def _node_name(net: NodeNetwork) -> str:
    return f"node-{net.index}"


def _cgroup_prefix(state: ClusterState, net: NodeNetwork) -> str:
    return f"aiokube-{state.cluster_id}-{_node_name(net)}"


def _start_node_runtime(state: ClusterState, net: NodeNetwork, images: dict[str, str], progress: Progress) -> None:
    """The node's containerd (in its netns) with the local images, and the host's route to its pods: nothing here
    needs the API server, so it runs while the API server starts.
    Each process is recorded (and saved) as soon as it runs, so a failure later still lets `down` stop it."""
    from aiokube.node.containerd import ContainerdConfig, start_containerd
    from aiokube.node.images import import_all

    name = _node_name(net)
    root = os.path.join(state.data_dir, "nodes", name)
    os.makedirs(root, exist_ok=True)
    progress(f"starting containerd for {name} ({net.node_ip})")
    # No masquerading: pods keep their source IPs across nodes (host-gw routes). No pod CIDR yet: the
    # controller-manager's nodeipam allocates one to the Node and the node agent hands it to containerd (CRI
    # UpdateRuntimeConfig), which renders its CNI config from it; a Node keeps its allocation across re-ups.
    containerd = start_containerd(ContainerdConfig(root_dir=os.path.join(root, "containerd"), pod_cidr=None,
                                                   netns=net.netns_path, cgroup_prefix=_cgroup_prefix(state, net),
                                                   sandbox_image="localhost/pause:3.9", ip_masq=False))
    state.processes.append(adopt(f"containerd-{name}", containerd.pid, ["containerd"], containerd.config.log_path))
    state.nodes.append(NodeState(name, root, containerd.socket, "", net.netns_path, net.node_ip))
    state.save()
    progress(f"importing images (pause, busybox) into {name}")
    import_all(containerd.socket, images)


def _route_pod_cidrs(state: ClusterState, api: httpx.Client) -> None:
    """Record each Node's podCIDR (nodeipam's allocation) and route it from the host via the node's IP."""
    for node in api.get("/api/v1/nodes").raise_for_status().json()["items"]:
        mine = next((n for n in state.nodes if n.name == node["metadata"]["name"]), None)
        pod_cidr = node.get("spec", {}).get("podCIDR")
        if mine is not None and pod_cidr:
            mine.pod_cidr = pod_cidr
            _add_host_route(pod_cidr, mine.node_ip)
    state.save()


def _start_node_agents(state: ClusterState, net: NodeNetwork, ca: pki.CertKey) -> None:
    """The node agent and DNS inside the node's netns, its service proxy on the host programming it; all three
    with the node's own credential (system:node:<name>)."""
    name = _node_name(net)
    node = next(n for n in state.nodes if n.name == name)
    creds = ClusterCredentials(state.data_dir)
    write_node_credentials(creds, ca, server=state.server, node=name, node_ip=net.node_ip)
    kubeconfig = creds.node_kubeconfig(name)
    serving_cert, serving_key = creds.node_serving(name)
    logs = os.path.join(state.data_dir, "logs")
    py = sys.executable
    commands = {
        f"kubelet-{name}": _in_netns(net, [
            py, "-m", "kubelet", "--kubeconfig", kubeconfig, "--node-name", name,
            "--containerd-socket", node.containerd_socket, "--root-dir", os.path.join(node.root_dir, "kubelet"),
            "--node-ip", net.node_ip, "--cgroup-prefix", _cgroup_prefix(state, net),
            "--cluster-dns", net.node_ip, "--server-port", str(KUBELET_PORT),
            "--tls-cert-file", serving_cert, "--tls-private-key-file", serving_key,
            "--client-ca-file", creds.kubelet_client_ca]),
        # The proxy stays in the host netns and programs the node's through nsenter (docs/contracts.md).
        f"proxy-{name}": [py, "-m", "proxy", "--kubeconfig", kubeconfig, "--node-name", name,
                          "--netns-exec", net.netns_path, "--cleanup-on-exit"],
        f"clusterdns-{name}": _in_netns(net, [py, "-m", "clusterdns", "--kubeconfig", kubeconfig,
                                              "--bind", f"{net.node_ip}:{DNS_PORT}"]),
    }
    for process_name, argv in commands.items():
        state.processes.append(spawn(process_name, argv, os.path.join(logs, f"{process_name}.log")))
        state.save()


def _apiserver_args(state: ClusterState, creds: ClusterCredentials) -> list[str]:
    """HTTPS with client certificates from the cluster CA, RBAC (with the node restriction), and verified TLS to
    the node agents, presenting the API server's kubelet-client certificate."""
    serving_cert, serving_key = creds.apiserver
    kubelet_client_cert, kubelet_client_key = creds.kubelet_client
    return ["--etcd-servers", f"http://127.0.0.1:{state.etcd_client_port}", "--bind-address", state.api_host,
            "--advertise-address", state.api_host, "--port", str(state.api_port),
            "--tls-cert-file", serving_cert, "--tls-private-key-file", serving_key,
            "--client-ca-file", creds.ca_cert, "--authorization-mode", "RBAC",
            "--kubelet-certificate-authority", creds.ca_cert,
            "--kubelet-client-certificate", kubelet_client_cert, "--kubelet-client-key", kubelet_client_key]


def _controller_args(creds: ClusterCredentials) -> dict[str, list[str]]:
    """The controller-manager's and the scheduler's arguments, each with its own identity."""
    return {
        # The CSR signer lets `aiokube join` add machines to this cluster (see `aiokube token create`).
        "controllers": ["--kubeconfig", creds.controller_manager_kubeconfig,
                        "--cluster-signing-cert-file", creds.ca_cert, "--cluster-signing-key-file", creds.ca_key],
        "scheduler": ["--kubeconfig", creds.scheduler_kubeconfig],
    }


def _wait_nodes_ready(state: ClusterState, api: httpx.Client, progress: Progress, timeout: float,
                      since: float) -> None:
    wanted = {n.name for n in state.nodes}
    reported = -1

    def all_ready() -> bool:
        nonlocal reported
        ready = wanted & _ready_nodes(api, since)
        if len(ready) != reported:
            reported = len(ready)
            progress(f"{len(ready)}/{len(wanted)} node(s) Ready")
        return ready == wanted

    _wait("nodes Ready", all_ready, timeout)


def up(data_dir: str, *, nodes: int | None = None, api_port: int = 6443, etcd_client_port: int = 2379,
       etcd_peer_port: int = 2380, progress: Progress = print) -> ClusterState:
    """Start (or bring back) the cluster of `data_dir`; `nodes` None = as many as last time (1 for a new one)."""
    started = time.time()
    data_dir = os.path.abspath(data_dir)
    os.makedirs(os.path.join(data_dir, "logs"), exist_ok=True)
    previous = ClusterState.load(data_dir)
    if previous and any(p.alive() for p in previous.processes):
        raise UpError(f"a cluster is already running from {data_dir}: `aiokube down --data-dir {data_dir}` first")
    if previous:  # bring the same cluster back: same ports, same etcd data
        api_port, etcd_client_port, etcd_peer_port = (previous.api_port, previous.etcd_client_port,
                                                      previous.etcd_peer_port)
    if nodes is None:
        nodes = len(previous.nodes) if previous and previous.nodes else 1
    node_count = nodes if component_available("kubelet") else 0
    check_prerequisites(node_count)
    state = ClusterState(data_dir, api_port, etcd_client_port, etcd_peer_port, cluster_id=cluster_id_for(data_dir))
    stack = contextlib.ExitStack()
    try:
        networks = []
        if node_count:
            progress(f"creating {node_count} node network namespace(s)")
            networks = [create_node_network(state.cluster_id, i) for i in range(1, node_count + 1)]
            # Node agents, DNS servers and pods live in the node namespaces: they reach the API server at the
            # host's address on the node bridge (which the `kubernetes` Service's endpoints advertise too).
            state.api_host = networks[0].gateway_ip
        creds = ClusterCredentials(data_dir)
        ca = write_control_plane_credentials(creds, server=state.server, api_host=state.api_host)
        progress("starting etcd")
        state.processes.append(_start_etcd(state))
        state.save()
        progress("starting the API server")
        api = _python_component(state, "apiserver", _apiserver_args(state, creds))
        state.processes.append(api)
        state.save()
        if networks:  # the nodes' runtimes need no API server: they start while it does
            from aiokube.node.images import build_images

            images = build_images(os.path.join(state.data_dir, "images"))
            for net in networks:
                _start_node_runtime(state, net, images, progress)
        progress("waiting for the API server")
        admin = stack.enter_context(admin_http(state))
        _wait("API server", lambda: admin.get("/readyz").status_code == 200, 60, api)
        for module, args in _controller_args(creds).items():
            if component_available(module):
                progress(f"starting {module}")
                state.processes.append(_python_component(state, module, args))
                state.save()
        if networks:
            for net in networks:
                _start_node_agents(state, net, ca)
            _wait_nodes_ready(state, admin, progress, 90, since=math.floor(started))  # RFC 3339 has whole seconds
            _route_pod_cidrs(state, admin)  # a Node is Ready only once its pod CIDR is configured
        for p in state.processes:
            if not p.alive():
                raise UpError(f"{p.name} exited during start-up; see {p.log}")
    except BaseException:
        # Leave nothing half-started behind: stop what this run started (pods first, as `down` does).
        state.save()
        from aiokube.cluster.down import down

        down(data_dir, progress=lambda _m: None)
        raise
    finally:
        stack.close()
    return state
