"""deploy/README.md's 3-VM walkthrough, run for real on two "machines" (issue 7).

A control plane and one worker, each a network namespace reachable only through its own IP, set up as the README
says, except that systemd (not PID 1 here) is replaced by tests.support.units.UnitRunner, which starts each
unit's ExecStart with its EnvironmentFile variables expanded, inside the machine's namespace:
  * control plane: make_control_plane_pki.py, the README's own `printf` lines for etcd.env/apiserver.env (taken
    from the README, with this machine's IP), then the shipped aiokube-{etcd,apiserver,controller-manager,
    scheduler}.service; then `aiokube token create` with KUBECONFIG=admin.conf prints the join command;
  * worker: the printed `aiokube join … --systemd` (which writes units and starts nothing), the units join
    wrote, in systemd's dependency order, and the README's loop that builds and imports the node images.
Shown: the worker's Node turns Ready (its podCIDR from nodeipam), a busybox pod runs on it, `kubectl logs` works
(API server -> node agent over TLS with the kubelet-client certificate), and afterwards no process, mount,
cgroup or namespace of either machine is left.

The units name the installed layout (/etc/aiokube, /var/lib/aiokube, /opt/aiokube/.venv); the runner maps those
prefixes to temp dirs and this checkout's venv, leaving the units as shipped.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiokube.cluster import netns, teardown
from aiokube.node.containerd import _socket_answers
from tests.e2e.join_harness import (
    ROOT,
    Worker,
    in_netns,
    pytestmark,  # noqa: F401  (root, ip, nsenter, etcd, containerd, runc)
    wait_until,
)
from tests.support.units import UnitRunner

DEPLOY = Path(ROOT) / "deploy"
README = DEPLOY / "README.md"
CONTROL_PLANE_UNITS = ["aiokube-etcd.service", "aiokube-apiserver.service", "aiokube-controller-manager.service",
                       "aiokube-scheduler.service"]
# systemd's order for the node units: the node agent is After=/Requires= containerd; the others need nothing.
NODE_UNITS = ["aiokube-containerd.service", "aiokube-kubelet.service", "aiokube-proxy.service",
              "aiokube-clusterdns.service"]
README_CP_IP = "10.0.0.11"  # the control plane's address in the README's commands
INSTALLED_PYTHON = "/opt/aiokube/.venv/bin/python"
AIOKUBE = os.path.join(os.path.dirname(sys.executable), "aiokube")  # the checkout's console script


@pytest.fixture
def cluster_id() -> Iterator[str]:
    cid = "d" + uuid.uuid4().hex[:5]
    try:
        yield cid
    finally:
        netns.delete_cluster_network(cid)


def readme_printf_lines(etc_dir: Path, cp_ip: str) -> list[str]:
    """The README's 3-VM `printf … > /etc/aiokube/*.env` lines, for this machine's IP and etc dir."""
    section = README.read_text().split("## 3-VM cluster", 1)[1].split("\n## ", 1)[0]
    lines = re.findall(r"^printf .* > /etc/aiokube/\w+\.env$", section, re.MULTILINE)
    assert len(lines) == 2, lines
    return [line.replace(README_CP_IP, cp_ip).replace("/etc/aiokube", str(etc_dir)) for line in lines]


def readme_image_loop(worker_data: Path) -> str:
    """The README's worker loop that builds and imports the node images, for this worker's data dir."""
    section = README.read_text().split("## 3-VM cluster", 1)[1].split("\n## ", 1)[0]
    loop = re.search(r"^for image in .*?^done$", section, re.MULTILINE | re.DOTALL)
    assert loop, "deploy/README.md's worker steps no longer import the node images"
    return loop.group(0).replace("/opt/aiokube/deploy", str(DEPLOY)).replace("/var/lib/aiokube", str(worker_data))


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          input=stdin, timeout=30)


def kubectl_json(kubeconfig: Path, *args: str) -> Any:
    done = kubectl(kubeconfig, *args, "-o", "json")
    return json.loads(done.stdout) if done.returncode == 0 else None


def condition_true(obj: Any, kind: str) -> bool:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == kind and c["status"] == "True" for c in conditions)


def busybox_pod(node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello"},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "localhost/busybox:latest", "imagePullPolicy": "Never",
                                     "command": ["sh", "-c", "echo hello from $(hostname); exec sleep 3600"]}]}}


def test_readme_walkthrough_control_plane_and_worker(cluster_id: str, tmp_path: Path) -> None:
    started = time.monotonic()

    def phase(what: str) -> None:  # shown on failure (and with -s): where the time goes
        print(f"{time.monotonic() - started:6.1f}s {what}")

    cp_net = netns.create_node_network(cluster_id, 1)
    worker_net = netns.create_node_network(cluster_id, 2)
    etc_dir, cp_var = tmp_path / "cp-etc-aiokube", tmp_path / "cp-var-lib-aiokube"
    # The worker's /var/lib/aiokube: a short name, as containerd's ttrpc socket path must stay under 104 bytes.
    unit_dir, worker_data = tmp_path / "worker-etc-systemd-system", tmp_path / "w"
    node_name = f"{cluster_id}-worker-1"
    # systemd would run /opt/aiokube/.venv/bin/python: here that is this checkout's venv (same packages).
    control_plane = UnitRunner({"/etc/aiokube": str(etc_dir), "/var/lib/aiokube": str(cp_var),
                                INSTALLED_PYTHON: sys.executable},
                               in_netns(cp_net, []), tmp_path / "cp-logs", ROOT)
    worker_units = UnitRunner({INSTALLED_PYTHON: sys.executable}, in_netns(worker_net, []),
                              tmp_path / "worker-logs", ROOT)
    worker = Worker(node_name, worker_net, str(worker_data))
    admin_conf = etc_dir / "admin.conf"
    try:
        # --- control plane, as the README's commands -------------------------------------------------------
        pki_run = subprocess.run([sys.executable, str(DEPLOY / "make_control_plane_pki.py"), "--ip", cp_net.node_ip,
                                  "--etcd-name", "cp1", "--out", str(etc_dir)],
                                 capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert pki_run.returncode == 0, pki_run.stderr
        for line in readme_printf_lines(etc_dir, cp_net.node_ip):
            subprocess.run(["sh", "-c", line], check=True, timeout=10)
        cp_var.mkdir()
        for name in CONTROL_PLANE_UNITS:
            control_plane.start(DEPLOY / "systemd" / name)
        context = ssl.create_default_context(cafile=str(etc_dir / "pki" / "ca.crt"))
        server = f"https://{cp_net.node_ip}:6443"
        wait_until("the API server's /readyz",
                   lambda: httpx.get(f"{server}/readyz", verify=context, timeout=2).status_code == 200, timeout=40)
        phase("control-plane units running")

        created = subprocess.run(in_netns(cp_net, [AIOKUBE, "token", "create"]), capture_output=True, text=True,
                                 timeout=30, cwd=ROOT, env={**os.environ, "KUBECONFIG": str(admin_conf)})
        assert created.returncode == 0, created.stderr
        command = created.stdout.strip().split()
        assert command[:4] == ["aiokube", "join", "--server", server], created.stdout

        # --- the worker: join writes units (starting nothing), then they are started as systemd would --------
        joined = subprocess.run(in_netns(worker_net, [AIOKUBE, *command[1:], "--node-name", node_name, "--systemd",
                                                      "--unit-dir", str(unit_dir), "--data-dir", str(worker_data),
                                                      "--timeout", "40"]),
                                capture_output=True, text=True, timeout=90, cwd=ROOT)
        assert joined.returncode == 0, joined.stdout + joined.stderr
        assert sorted(p.name for p in unit_dir.iterdir()) == sorted(NODE_UNITS)
        assert worker.machine_pids() == set(), "join --systemd must not start anything"
        phase("worker joined, units written")
        for name in NODE_UNITS:
            worker_units.start(unit_dir / name)
        containerd = worker_units.processes[0]
        socket = os.path.join(worker_data, "containerd", "containerd.sock")
        # `systemctl enable --now` returns once containerd is forked; its socket follows shortly.
        wait_until("the worker's containerd socket", lambda: containerd.alive() and _socket_answers(socket))
        images = subprocess.run(["bash", "-c", readme_image_loop(worker_data)], capture_output=True, text=True,
                                timeout=60)
        assert images.returncode == 0, images.stdout + images.stderr

        wait_until(f"{node_name} Ready",
                   lambda: condition_true(kubectl_json(admin_conf, "get", "node", node_name), "Ready"), timeout=40)
        node = kubectl_json(admin_conf, "get", "node", node_name)
        assert node["spec"].get("podCIDR"), "nodeipam gave the Node no podCIDR"
        phase("worker Ready")

        applied = kubectl(admin_conf, "apply", "-f", "-", stdin=json.dumps(busybox_pod(node_name)))
        assert applied.returncode == 0, applied.stderr
        wait_until("the busybox pod Ready",
                   lambda: condition_true(kubectl_json(admin_conf, "get", "pod", "hello"), "Ready"), timeout=40)
        pod = kubectl_json(admin_conf, "get", "pod", "hello")
        assert pod["spec"]["nodeName"] == node_name and pod["status"]["phase"] == "Running"
        logs = kubectl(admin_conf, "logs", "hello")
        assert (logs.returncode, logs.stdout) == (0, "hello from hello\n"), logs.stderr
        csrs = kubectl_json(admin_conf, "get", "csr")
        signers = sorted(c["spec"]["signerName"] for c in csrs["items"] if c.get("status", {}).get("certificate"))
        assert signers == ["kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving"]
        phase("pod running, logs through the API server")
    finally:
        # As `systemctl stop` would: every unit's process by PID, newest first; then the worker's pods are
        # removed through CRI, leftover processes killed, mounts and cgroups removed (Worker.cleanup).
        worker_units.stop_all()
        worker.cleanup()
        control_plane.stop_all()
        phase("cleaned up")
    assert worker.machine_pids() == set()
    assert teardown.mounts_under(str(worker_data)) == []
    assert not any(os.path.exists(os.path.join("/sys/fs/cgroup", h, worker.cgroup_prefix))
                   for h in os.listdir("/sys/fs/cgroup"))
    out = subprocess.run(["ip", "netns", "pids", cp_net.netns_name], capture_output=True, text=True).stdout
    assert out.split() == [], f"processes left on the control-plane machine: {out}"
