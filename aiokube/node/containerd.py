"""A private containerd instance for one node: config generation, start (optionally inside a netns), stop.

Each node gets its own root, state, socket, runc root, CNI config and host-local IPAM data dir, so several nodes
(and test runs) share one machine without seeing each other. The keys below are the ones recorded in
runtime-notes.md as working with Debian's containerd 1.6 on this kind of machine.

The pod CIDR is either fixed at start (`pod_cidr=...`: the conflist is written next to the config) or left to
the cluster (`pod_cidr=None`): containerd then starts with an empty CNI conf dir (CRI reports NetworkReady=false)
and a conflist template (`conf_template`); the node agent, once the controller-manager's nodeipam gave its Node a
podCIDR, calls CRI UpdateRuntimeConfig(pod_cidr), and containerd renders the template into the conf dir and
loads it (its CNI conf syncer watches the dir), as kubeadm-style kubelets do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

CNI_BIN_DIR = "/usr/lib/cni"
CONFLIST_NAME = "10-aiokube.conflist"
# containerd's Go text/template field for the first pod CIDR passed to UpdateRuntimeConfig.
POD_CIDR_TEMPLATE_FIELD = "{{.PodCIDR}}"


@dataclass(frozen=True)
class ContainerdConfig:
    root_dir: str
    # None: no CNI config until the node agent passes the Node's podCIDR (CRI UpdateRuntimeConfig), see above.
    pod_cidr: str | None = "10.244.1.0/24"
    netns: str | None = None  # e.g. /var/run/netns/node1: containerd (and so every pod) lives in that netns
    cgroup_prefix: str = "aiokube"
    sandbox_image: str = "localhost/pause:3.9"
    bridge_name: str = "cni0"
    # Masquerading pod traffic is right for a single node; multi-node host-gw routing keeps source IPs.
    ip_masq: bool = True
    # Where the CRI streaming server (exec/attach with stdin) listens. Inside a node netns 127.0.0.1 is not
    # reachable from an agent in the host netns: pass the node's IP there.
    stream_address: str = "127.0.0.1"

    @property
    def socket(self) -> str:
        return os.path.join(os.path.abspath(self.root_dir), "containerd.sock")

    @property
    def config_path(self) -> str:
        return os.path.join(os.path.abspath(self.root_dir), "config.toml")

    @property
    def cni_conf_dir(self) -> str:
        return os.path.join(os.path.abspath(self.root_dir), "net.d")

    @property
    def cni_conf_template(self) -> str:
        return os.path.join(os.path.abspath(self.root_dir), "cni-conflist.tmpl")

    @property
    def cni_conflist_path(self) -> str:
        """Where the conflist of a fixed pod CIDR is written (containerd names its rendered one
        10-containerd-net.conflist; with max_conf_num = 1 only the first in name order is loaded)."""
        return os.path.join(self.cni_conf_dir, CONFLIST_NAME)

    @property
    def log_path(self) -> str:
        return os.path.join(os.path.abspath(self.root_dir), "containerd.log")


@dataclass
class ContainerdProcess:
    pid: int
    socket: str
    config: ContainerdConfig
    process: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True


def render_config(cfg: ContainerdConfig) -> str:
    """containerd's version-2 config.toml for this node."""
    d = os.path.abspath(cfg.root_dir)
    # Only without a fixed CIDR: containerd renders this template on UpdateRuntimeConfig while no CNI config
    # is loaded (it ignores the call once the network is ready).
    template = "" if cfg.pod_cidr else f'\n    conf_template = "{cfg.cni_conf_template}"'
    return f"""version = 2
root = "{d}/root"
state = "{d}/state"

[grpc]
  address = "{cfg.socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{cfg.sandbox_image}"
  stream_server_address = "{cfg.stream_address}"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  # Required on this machine: without it runc cannot set oom_score_adj (no CAP_SYS_RESOURCE) and every
  # RunPodSandbox fails with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cfg.cni_conf_dir}"
    max_conf_num = 1{template}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d}/runc"
"""


def render_cni_conflist(cfg: ContainerdConfig, pod_cidr: str | None = None) -> str:
    """bridge + host-local IPAM (per-node data dir) + portmap (hostPort) + loopback, for `pod_cidr` (default:
    the config's)."""
    subnet = pod_cidr or cfg.pod_cidr
    if not subnet:
        raise ValueError("a CNI conflist needs a pod CIDR")
    conf = {
        "cniVersion": "1.0.0",
        "name": "aiokube",
        "plugins": [
            {
                "type": "bridge",
                "bridge": cfg.bridge_name,
                "isGateway": True,
                "ipMasq": cfg.ip_masq,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": os.path.join(os.path.abspath(cfg.root_dir), "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ],
    }
    return json.dumps(conf, indent=2) + "\n"


def render_cni_conflist_template(cfg: ContainerdConfig) -> str:
    """The same conflist with containerd's template field where the subnet goes (rendered by containerd)."""
    return render_cni_conflist(cfg, POD_CIDR_TEMPLATE_FIELD)


def write_config(cfg: ContainerdConfig) -> None:
    """config.toml, plus the conflist (fixed CIDR) or its template (CIDR from the cluster).

    Without a fixed CIDR an existing conflist is left alone: a restarted containerd of a node that already has
    its podCIDR keeps networking, and the node agent re-applies the CIDR whenever the runtime reports its
    network not ready."""
    os.makedirs(cfg.root_dir, exist_ok=True)
    os.makedirs(cfg.cni_conf_dir, exist_ok=True)
    with open(cfg.config_path, "w") as f:
        f.write(render_config(cfg))
    if cfg.pod_cidr:
        _write(cfg.cni_conflist_path, render_cni_conflist(cfg))
    else:
        _write(cfg.cni_conf_template, render_cni_conflist_template(cfg))


def _write(path: str, text: str) -> None:
    # Atomic: containerd's conf-dir watcher must never load a half-written file.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _socket_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            return False
        return True


def start_containerd(cfg: ContainerdConfig, *, timeout: float = 20.0) -> ContainerdProcess:
    """Write the config and start containerd in its own session; return once its socket accepts connections."""
    binary = shutil.which("containerd")
    if binary is None:
        raise RuntimeError("containerd is not installed: run `bash deploy/install.sh`")
    write_config(cfg)
    argv = [binary, "--config", cfg.config_path]
    if cfg.netns:
        # nsenter, not `ip netns exec`: the latter remounts /sys and runc then finds no cgroup mount.
        argv = ["nsenter", f"--net={cfg.netns}", *argv]
    log = open(cfg.log_path, "ab")  # handed to the child, closed right after
    try:
        process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"containerd exited with {process.returncode}; see {cfg.log_path}")
        if _socket_answers(cfg.socket):
            return ContainerdProcess(pid=process.pid, socket=cfg.socket, config=cfg, process=process)
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"containerd socket {cfg.socket} did not come up; see {cfg.log_path}")


def stop_containerd(proc: ContainerdProcess, *, timeout: float = 15.0) -> None:
    """SIGTERM by PID, SIGKILL after `timeout`. Shims (and so running pods) survive, as with a real node."""
    if not proc.alive():
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process is not None:
            if proc.process.poll() is not None:
                return
        elif not proc.alive():
            return
        time.sleep(0.05)
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if proc.process is not None:
        proc.process.wait()
