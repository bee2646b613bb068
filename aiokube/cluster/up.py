"""`aiokube up`: start etcd, the API server, the controller-manager, the scheduler and N nodes, then wait.

Every component is a separate process in its own session (it outlives the CLI), logging to DATA_DIR/logs/.
Running `up` again on the same data dir brings the same cluster back with its state (etcd keeps its data).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Callable

import httpx

from aiokube.cluster.kubeconfig import write_kubeconfig
from aiokube.cluster.process import ManagedProcess, adopt, spawn
from aiokube.cluster.state import ClusterState, NodeState

Progress = Callable[[str], None]


class UpError(Exception):
    """A prerequisite is missing or a component failed to start; the message says what to do."""


def component_available(module: str) -> bool:
    """True when `python -m module` exists in this installation (components land one issue at a time)."""
    return importlib.util.find_spec(f"{module}.__main__") is not None


def check_prerequisites(nodes: int) -> None:
    missing = [b for b in ("etcd",) if shutil.which(b) is None]
    if nodes and component_available("kubelet"):
        missing += [b for b in ("containerd", "runc", "ctr", "umoci") if shutil.which(b) is None]
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


def _http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


def _ready_nodes(server: str) -> set[str]:
    response = httpx.get(f"{server}/api/v1/nodes", timeout=5)
    response.raise_for_status()
    ready = set()
    for node in response.json().get("items", []):
        for cond in node.get("status", {}).get("conditions", []):
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                ready.add(node["metadata"]["name"])
    return ready


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


def _start_node(state: ClusterState, index: int, progress: Progress) -> list[ManagedProcess]:
    from aiokube.node.containerd import ContainerdConfig, start_containerd
    from aiokube.node.images import build_images, import_all

    name = f"node-{index}"
    root = os.path.join(state.data_dir, "nodes", name)
    pod_cidr = f"10.244.{index}.0/24"
    os.makedirs(root, exist_ok=True)
    progress(f"starting containerd for {name}")
    containerd = start_containerd(ContainerdConfig(root_dir=os.path.join(root, "containerd"), pod_cidr=pod_cidr,
                                                   netns=None, cgroup_prefix=f"aiokube-{name}",
                                                   sandbox_image="localhost/pause:3.9"))
    procs = [adopt(f"containerd-{name}", containerd.pid, ["containerd"], containerd.config.log_path)]
    progress("importing images (pause, busybox)")
    import_all(containerd.socket, build_images(os.path.join(state.data_dir, "images")))
    kubelet = _python_component(state, "kubelet", [
        "--kubeconfig", state.kubeconfig, "--node-name", name, "--containerd-socket", containerd.socket,
        "--root-dir", os.path.join(root, "kubelet"), "--pod-cidr", pod_cidr,
        "--cgroup-prefix", f"aiokube-{name}", "--server-port", str(10250 + index),
    ])
    kubelet.name = f"kubelet-{name}"
    kubelet.log = os.path.join(state.data_dir, "logs", f"kubelet-{name}.log")
    state.nodes.append(NodeState(name, root, containerd.socket, pod_cidr))
    return [*procs, kubelet]


def up(data_dir: str, *, nodes: int = 1, api_port: int = 6443, etcd_client_port: int = 2379,
       etcd_peer_port: int = 2380, progress: Progress = print) -> ClusterState:
    data_dir = os.path.abspath(data_dir)
    os.makedirs(os.path.join(data_dir, "logs"), exist_ok=True)
    previous = ClusterState.load(data_dir)
    if previous and any(p.alive() for p in previous.processes):
        raise UpError(f"a cluster is already running from {data_dir}: `aiokube down --data-dir {data_dir}` first")
    if previous:  # bring the same cluster back: same ports, same etcd data
        api_port, etcd_client_port, etcd_peer_port = (previous.api_port, previous.etcd_client_port,
                                                      previous.etcd_peer_port)
    node_count = nodes if component_available("kubelet") else 0
    check_prerequisites(node_count)
    state = ClusterState(data_dir, api_port, etcd_client_port, etcd_peer_port)
    write_kubeconfig(state.kubeconfig, state.server)
    try:
        progress("starting etcd")
        state.processes.append(_start_etcd(state))
        state.save()
        progress("starting the API server")
        api = _python_component(state, "apiserver", [
            "--etcd-servers", f"http://127.0.0.1:{etcd_client_port}", "--bind-address", "127.0.0.1",
            "--port", str(api_port)])
        state.processes.append(api)
        state.save()
        _wait("API server", lambda: _http_ok(f"{state.server}/readyz"), 60, api)
        for module in ("controllers", "scheduler"):
            if component_available(module):
                progress(f"starting {module}")
                state.processes.append(_python_component(state, module, ["--kubeconfig", state.kubeconfig]))
                state.save()
        for index in range(1, node_count + 1):
            state.processes.extend(_start_node(state, index, progress))
            state.save()
        if node_count:
            progress(f"waiting for {node_count} node(s) to be Ready")
            wanted = {n.name for n in state.nodes}
            _wait("nodes Ready", lambda: wanted <= _ready_nodes(state.server), 90)
        for p in state.processes:
            if not p.alive():
                raise UpError(f"{p.name} exited during start-up; see {p.log}")
    except BaseException:
        # Leave nothing half-started behind: stop what this run started (pods first, as `down` does).
        state.save()
        from aiokube.cluster.down import down

        down(data_dir, progress=lambda _m: None)
        raise
    return state
