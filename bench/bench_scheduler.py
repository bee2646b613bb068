"""Scheduler throughput, scheduler_perf style, with the real API server and etcd in the loop.

    .venv/bin/python bench/bench_scheduler.py                       # 100/1,000, 1,000/3,000, 5,000/10,000
    .venv/bin/python bench/bench_scheduler.py --nodes 1000 --pods 3000

For each (nodes, pods) case: start a private etcd and `python -m apiserver`, create the Node objects and the
pending pods through the API (scheduler not running yet), then start `python -m scheduler` and watch pods until
all are bound. Prints pods/s (from the first bind to the last, and from scheduler start including its cache
sync), the scheduler's CPU seconds and peak RSS, the CPU of the API server, etcd and this process's watcher
(they share the cores), and how many Scheduled events were written (one per pod expected, written after the
bindings when the burst outruns them). Figures only, no pass/fail. Kubernetes' own floor for
SchedulingBasic is 680 pods/s at 5,000 nodes (on far bigger machines).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokube.client import ApiClient
from bench.support import (
    create_all,
    etcd_and_workdir,
    proc_cpu_seconds,
    proc_peak_rss_mb,
    spawn,
    start_apiserver,
    stop,
)

DEFAULT_CASES = ((100, 1000), (1000, 3000), (5000, 10000))


@dataclass
class Figures:
    nodes: int
    pods: int
    create_seconds: float
    sync_seconds: float
    bind_seconds: float
    total_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    apiserver_cpu_seconds: float
    etcd_cpu_seconds: float
    bench_cpu_seconds: float  # this process: its watch decoding every pod update competes for the 2 cores
    scheduled_events: int  # Scheduled events written by the end of the run (one per pod is expected)

    def line(self) -> str:
        return (f"{self.nodes:>6} nodes {self.pods:>6} pods | {self.pods / self.bind_seconds:7.1f} pods/s "
                f"(first→last bind {self.bind_seconds:6.2f}s) | {self.pods / self.total_seconds:7.1f} pods/s incl. "
                f"start+sync {self.sync_seconds:5.2f}s | scheduler CPU {self.cpu_seconds:6.2f}s "
                f"| peak RSS {self.peak_rss_mb:6.1f} MiB | API server CPU {self.apiserver_cpu_seconds:6.2f}s "
                f"| etcd CPU {self.etcd_cpu_seconds:5.2f}s | bench watcher CPU {self.bench_cpu_seconds:5.2f}s "
                f"| Scheduled events {self.scheduled_events} "
                f"| setup (create) {self.create_seconds:6.1f}s")


def node(i: int) -> dict:
    alloc = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "500Gi"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"node-{i:05d}", "labels": {"kubernetes.io/hostname": f"node-{i:05d}",
                                                             "topology.kubernetes.io/zone": f"zone-{i % 3}"}},
            "status": {"allocatable": alloc, "capacity": alloc,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(i: int) -> dict:
    # SchedulingBasic's pod template: one container asking for 100m CPU and 500Mi memory.
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pod-{i:06d}", "namespace": "default", "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]}}


async def count_bound(client: ApiClient, total: int, start_rv: str, started: float) -> tuple[float, float]:
    """Watch pods until `total` have a node; returns (first bind time, last bind time)."""
    bound: set[str] = set()
    first = 0.0
    while True:
        async for event in client.watch("pods", namespace="default", resource_version=start_rv,
                                        allow_bookmarks=True):
            obj = event["object"]
            start_rv = obj["metadata"].get("resourceVersion", start_rv)
            if event["type"] in ("ADDED", "MODIFIED") and obj.get("spec", {}).get("nodeName"):
                if not first:
                    first = time.monotonic()
                bound.add(obj["metadata"]["name"])
                if len(bound) >= total:
                    return first, time.monotonic()
        if time.monotonic() - started > 3600:
            raise RuntimeError("gave up waiting for bindings")


async def count_scheduled_events(client: ApiClient, expected: int, patience: float = 10.0) -> int:
    """Scheduled events in "default", waiting up to `patience` seconds for the asynchronous writes to land."""
    deadline = time.monotonic() + patience
    while True:
        events = (await client.list("events", namespace="default"))["items"]
        count = sum(1 for e in events if e.get("reason") == "Scheduled")
        if count >= expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.5)


async def run_case(num_nodes: int, num_pods: int, workdir: Path, etcd_url: str, etcd_pid: int) -> Figures:
    prefix = f"/bench-{num_nodes}-{num_pods}-{os.getpid()}"
    apiserver, url = start_apiserver(etcd_url, prefix)
    scheduler: subprocess.Popen[bytes] | None = None
    try:
        kubeconfig = workdir / f"kubeconfig-{url.rsplit(':', 1)[1]}"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: bench\n"
            f"clusters: [{{name: bench, cluster: {{server: '{url}'}}}}]\n"
            "users: [{name: bench, user: {}}]\n"
            "contexts: [{name: bench, context: {cluster: bench, user: bench}}]\n")
        async with ApiClient(server=url) as client:
            t0 = time.monotonic()
            await create_all(client, "nodes", [node(i) for i in range(num_nodes)])
            await create_all(client, "pods", [pod(i) for i in range(num_pods)])
            create_seconds = time.monotonic() - t0
            rv = (await client.list("pods", namespace="default", limit=1))["metadata"]["resourceVersion"]
            apiserver_cpu_before = proc_cpu_seconds(apiserver.pid)
            etcd_cpu_before = proc_cpu_seconds(etcd_pid)
            bench_cpu_before = time.process_time()
            started = time.monotonic()
            profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
            extra = os.environ.get("BENCH_SCHEDULER_ARGS", "").split()  # e.g. "--bind-concurrency 32"
            scheduler = spawn([sys.executable, *profile, "-m", "scheduler", "--kubeconfig", str(kubeconfig), *extra],
                              quiet=True)
            first, last = await count_bound(client, num_pods, rv, started)
            scheduled_events = await count_scheduled_events(client, num_pods)
        cpu = proc_cpu_seconds(scheduler.pid)
        rss = proc_peak_rss_mb(scheduler.pid)
        apiserver_cpu = proc_cpu_seconds(apiserver.pid) - apiserver_cpu_before
        etcd_cpu = proc_cpu_seconds(etcd_pid) - etcd_cpu_before
        bench_cpu = time.process_time() - bench_cpu_before
        return Figures(num_nodes, num_pods, create_seconds, first - started, max(last - first, 1e-9),
                       last - started, cpu, rss, apiserver_cpu, etcd_cpu, bench_cpu,
                       scheduled_events)
    finally:
        stop(scheduler)
        stop(apiserver)


def algorithm_only(num_nodes: int, num_pods: int) -> str:
    """The scheduling cycle alone (filter, score, assume) in-process: what the scheduler costs without HTTP."""
    from scheduler.algorithm import Algorithm
    from scheduler.cache import SchedulerCache
    from scheduler.framework import CycleState
    from scheduler.podinfo import pod_info
    from scheduler.profile import default_plugins

    cache = SchedulerCache()
    for i in range(num_nodes):
        cache.set_node(node(i))
    algorithm = Algorithm(cache, default_plugins(cache))
    pods = [pod_info(pod(i)) for i in range(num_pods)]
    started = time.process_time()
    for info in pods:
        cache.assume(info, algorithm.schedule(CycleState(), info))
    seconds = time.process_time() - started
    return (f"{num_nodes:>6} nodes {num_pods:>6} pods | scheduling cycle only (no API): "
            f"{num_pods / seconds:8.1f} pods/s, {seconds * 1e6 / num_pods:6.0f} µs CPU per pod")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, help="number of Node objects (with --pods: one case)")
    parser.add_argument("--pods", type=int, help="number of pending pods")
    # BENCH_PROFILE=/tmp/scheduler.prof in the environment runs the scheduler under cProfile.
    parser.add_argument("--algorithm-only", action="store_true",
                        help="time only the in-process scheduling cycle (no etcd, API server or HTTP)")
    args = parser.parse_args()
    cases = [(args.nodes, args.pods)] if args.nodes and args.pods else list(DEFAULT_CASES)
    if args.algorithm_only:
        for num_nodes, num_pods in cases:
            print(algorithm_only(num_nodes, num_pods), flush=True)
        return
    with etcd_and_workdir("bench-scheduler-") as (etcd, workdir):
        print(f"scheduler benchmark on {os.cpu_count()} cores (etcd + API server + scheduler on this machine)")
        for num_nodes, num_pods in cases:
            figures = await run_case(num_nodes, num_pods, workdir, etcd.url, etcd.process.pid)
            print(figures.line(), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
