"""Time from `aiokube up` to every node Ready (1 and 3 nodes), and the idle RSS of the control plane.

Runs the real CLI (`python -m aiokube.cli up --nodes N` in a fresh data dir, on free ports), timing the command
until it returns (it returns once every node reports Ready), then lets the cluster idle and reads the RSS
(/proc/PID/status VmRSS) of etcd, the API server, the controller-manager and the scheduler, printed beside
etcd alone. Each cluster is taken down with `down --purge`. Anchors (issue 7): a single-node cluster ready in
under 10 s; k3s's server idles at ~445 MB RSS, aim for less than half. Needs root (nodes), like `aiokube up`.

    .venv/bin/python bench/bench_cluster_up.py [--nodes 1 3] [--idle 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiokube.cluster.state import ClusterState
from tests.support.etcd import free_port

CONTROL_PLANE = ("etcd", "apiserver", "controllers", "scheduler")
K3S_SERVER_IDLE_MB = 445.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1_000_000  # VmRSS is in KiB; MB to compare with k3s's figure
    return 0.0


def aiokube(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aiokube.cli", *args], capture_output=True, text=True, timeout=600)


def measure(nodes: int, idle: float) -> tuple[float, dict[str, float]]:
    data_dir = tempfile.mkdtemp(prefix=f"bench-up-{nodes}-")
    try:
        started = time.perf_counter()
        result = aiokube("up", "--data-dir", data_dir, "--nodes", str(nodes), "--port", str(free_port()),
                         "--etcd-port", str(free_port()))
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"aiokube up --nodes {nodes} failed:\n{result.stdout}\n{result.stderr}")
        time.sleep(idle)  # let start-up garbage settle and the agents reach their steady heartbeat
        state = ClusterState.load(data_dir)
        assert state is not None
        rss = {p.name: rss_mb(p.pid) for p in state.processes if p.name in CONTROL_PLANE and p.alive()}
        return elapsed, rss
    finally:
        aiokube("down", "--purge", "--data-dir", data_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle before reading RSS")
    args = parser.parse_args()
    for nodes in args.nodes:
        elapsed, rss = measure(nodes, args.idle)
        total = sum(rss.values())
        print(f"\n{nodes} node(s): `aiokube up` → all nodes Ready in {elapsed:.1f} s (anchor: < 10 s for 1 node)")
        for name in CONTROL_PLANE:
            print(f"  {name:<12} {rss.get(name, 0.0):7.1f} MB RSS")
        print(f"  control plane {total:6.1f} MB RSS idle, etcd alone {rss.get('etcd', 0.0):.1f} MB; "
              f"k3s server ~{K3S_SERVER_IDLE_MB:.0f} MB (aim < {K3S_SERVER_IDLE_MB / 2:.0f} MB)")


if __name__ == "__main__":
    main()
