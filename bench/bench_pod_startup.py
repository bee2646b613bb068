"""Pod startup latency through the whole stack, beside its raw anchor measured in the same run.

  .venv/bin/python bench/bench_pod_startup.py [--pods 50] [--raw 20] [--steady-pods 100] [--steady-window 20]

Starts a private etcd, the API server, a private containerd and the node agent (`python -m kubelet`), then:
  raw    RunPodSandbox + CreateContainer + StartContainer straight through CRI (what the agent cannot beat)
  serial one pod at a time: POST the pod (already bound to the node) → Running seen on a watch
  burst  all pods POSTed at once → each one's Running seen on the watch, plus the wall time of the burst
  steady --steady-pods pods (100) kept Running: the agent's CPU seconds (total, and per second over an idle
         window of --steady-window s) and its RSS, read from /proc/<pid>/stat and /proc/<pid>/status
and prints p50/p90/p99/max in milliseconds, then PASS/MISS against the issue's targets for the serial mode (one
pod at a time, as the startup SLO measures): p99 <= 1 s, and p50 within 2x the raw CRI serial p50. The burst
figures are informational (a 2-core node starting 50 pods at once measures queueing, not startup latency).
Everything started is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from aiokube.client import ApiClient  # noqa: E402
from kubelet.cgroups import remove_pod_cgroup  # noqa: E402
from kubelet.cri import RuntimeClient, pb  # noqa: E402
from tests.support.apiserver import running_apiserver  # noqa: E402
from tests.support.containerd import start_test_containerd  # noqa: E402
from tests.support.etcd import free_port, start_etcd  # noqa: E402

IMAGE = "localhost/busybox:latest"
# The issue's targets for serial pod startup (Kubernetes' own SLO is p99 <= 5 s).
TARGET_P99_SECONDS = 1.0
TARGET_P50_OVER_RAW = 2.0


def quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def percentiles(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    ms = [s * 1000 for s in samples]
    return (f"n={len(ms):3d}  p50={quantile(ms, 0.5):7.1f}  p90={quantile(ms, 0.9):7.1f}  "
            f"p99={quantile(ms, 0.99):7.1f}  max={max(ms):7.1f}  mean={statistics.fmean(ms):7.1f}")


def verdicts(serial: list[float], raw: list[float]) -> list[str]:
    """PASS/MISS lines for the serial figures against the issue's two targets."""
    if not serial or not raw:
        return ["targets: no samples to judge"]
    p99, p50, raw_p50 = quantile(serial, 0.99), quantile(serial, 0.5), quantile(raw, 0.5)
    limit = TARGET_P50_OVER_RAW * raw_p50
    return [
        f"target p99 <= {TARGET_P99_SECONDS * 1000:.0f} ms (serial): "
        f"{'PASS' if p99 <= TARGET_P99_SECONDS else 'MISS'}  (p99={p99 * 1000:.1f} ms)",
        f"target p50 <= {TARGET_P50_OVER_RAW:g}x raw CRI p50 = {limit * 1000:.1f} ms (serial): "
        f"{'PASS' if p50 <= limit else 'MISS'}  (p50={p50 * 1000:.1f} ms, {p50 / raw_p50:.2f}x raw)",
    ]


def _raw_configs(i: int, log_dir: str) -> tuple[pb.PodSandboxConfig, pb.ContainerConfig]:
    uid = str(uuid.uuid4())
    sandbox = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=f"raw-{i}", uid=uid, namespace="bench", attempt=0),
        hostname=f"raw-{i}", log_directory=os.path.join(log_dir, uid),
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=f"/aiokube-bench/pod{uid}"))
    container = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="main"), image=pb.ImageSpec(image=IMAGE),
                                   command=["sleep", "3600"], log_path="main/0.log")
    return sandbox, container


async def _raw_start(runtime: RuntimeClient, i: int, log_dir: str) -> tuple[str, float]:
    sandbox, container = _raw_configs(i, log_dir)
    started = time.perf_counter()
    sandbox_id = await runtime.run_pod_sandbox(sandbox)
    cid = await runtime.create_container(sandbox_id, container, sandbox)
    await runtime.start_container(cid)
    return sandbox_id, time.perf_counter() - started


async def raw_cri(socket: str, count: int, log_dir: str, *, burst: bool) -> tuple[list[float], float]:
    """RunPodSandbox + CreateContainer + StartContainer straight through CRI, one by one or all at once."""
    async with RuntimeClient(socket) as runtime:
        started = time.perf_counter()
        if burst:
            results = await asyncio.gather(*(_raw_start(runtime, i, log_dir) for i in range(count)))
        else:
            results = [await _raw_start(runtime, i, log_dir) for i in range(count)]
        wall = time.perf_counter() - started
        for sandbox_id, _ in results:
            await runtime.stop_pod_sandbox(sandbox_id)
            await runtime.remove_pod_sandbox(sandbox_id)
    remove_pod_cgroup("/aiokube-bench")
    return [r[1] for r in results], wall


def pod_body(name: str, node_name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node_name, "terminationGracePeriodSeconds": 0, "containers": [{
                "name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}}


async def through_the_stack(api: ApiClient, node_name: str, count: int, *, burst: bool,
                            keep: bool = False, prefix: str = "") -> tuple[list[float], list[float], float]:
    """(POST → Running, POST answered → Running, wall time) for `count` pods."""
    created: dict[str, float] = {}
    accepted: dict[str, float] = {}  # the API server answered the POST
    running: dict[str, float] = {}
    all_running = asyncio.Event()
    one_running: asyncio.Queue[str] = asyncio.Queue()
    rv = (await api.list("pods", namespace="default"))["metadata"]["resourceVersion"]

    async def watch() -> None:
        async for event in api.watch("pods", namespace="default", resource_version=rv):
            obj = event["object"]
            name = obj.get("metadata", {}).get("name", "")
            if obj.get("status", {}).get("phase") == "Running" and name in created and name not in running:
                running[name] = time.perf_counter()
                one_running.put_nowait(name)
                if len(running) == count:
                    all_running.set()

    watcher = asyncio.create_task(watch())
    prefix = prefix or ("burst" if burst else "serial")
    started = time.perf_counter()
    try:
        if burst:
            async def create(i: int) -> None:
                created[f"{prefix}-{i}"] = time.perf_counter()
                await api.create("pods", pod_body(f"{prefix}-{i}", node_name), namespace="default")
                accepted[f"{prefix}-{i}"] = time.perf_counter()
            await asyncio.gather(*(create(i) for i in range(count)))
        else:
            for i in range(count):
                created[f"{prefix}-{i}"] = time.perf_counter()
                await api.create("pods", pod_body(f"{prefix}-{i}", node_name), namespace="default")
                accepted[f"{prefix}-{i}"] = time.perf_counter()
                await asyncio.wait_for(one_running.get(), 60)
        await asyncio.wait_for(all_running.wait(), 300)
    finally:
        watcher.cancel()
    wall = time.perf_counter() - started
    samples = [running[n] - created[n] for n in running]
    after_accept = [running[n] - accepted[n] for n in running]
    if not keep:
        await delete_pods(api, list(created))
    return samples, after_accept, wall


async def delete_pods(api: ApiClient, names: list[str]) -> None:
    for name in names:
        await api.delete("pods", name, namespace="default", grace_period_seconds=0)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_usage(pid: int) -> tuple[float, int]:
    """(user + system CPU seconds, resident set size in bytes) of one process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        # Fields after the parenthesised command name; utime and stime are the 14th and 15th of the whole line.
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return cpu, rss


async def steady_round(url: str, node_name: str, agent: subprocess.Popen[bytes], count: int,
                       window: float) -> None:
    """`count` pods Running: the agent's CPU and memory while it just keeps them (PLEG, resyncs, status)."""
    async with ApiClient(url) as api:
        await wait_node_ready(api, node_name, agent)
        _, _, wall = await through_the_stack(api, node_name, count, burst=True, keep=True, prefix="steady")
        print(f"steady: {count} pods Running after {wall:.2f} s", flush=True)
        cpu_before, _ = proc_usage(agent.pid)
        await asyncio.sleep(window)
        cpu_after, rss = proc_usage(agent.pid)
        print(f"agent with {count} pods running: CPU {cpu_after:.2f} s since start, "
              f"{(cpu_after - cpu_before) / window * 100:.1f}% of a core over {window:.0f} s idle, "
              f"RSS {rss / 2**20:.1f} MiB", flush=True)
        await delete_pods(api, [f"steady-{i}" for i in range(count)])


async def wait_node_ready(api: ApiClient, node_name: str, agent: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            raise RuntimeError("the node agent exited")
        try:
            node = await api.get("nodes", node_name)
            if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", [])):
                return
        except Exception:
            pass  # not registered yet
        await asyncio.sleep(0.2)
    raise RuntimeError("node never became Ready")


def wait_runtime_empty(socket: str) -> None:
    """Until the agent has removed every sandbox of the previous round (sync: between measured phases)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        out = subprocess.run(["ctr", "-a", socket, "-n", "k8s.io", "containers", "ls", "-q"],
                             capture_output=True, text=True).stdout
        if not out.strip():
            return
        time.sleep(0.2)


def write_kubeconfig(path: str, url: str) -> None:
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "b",
                   "clusters": [{"name": "b", "cluster": {"server": url}}], "users": [{"name": "b", "user": {}}],
                   "contexts": [{"name": "b", "context": {"cluster": "b", "user": "b"}}]}, f)


def start_agent(work: str, kubeconfig: str, node_name: str, socket: str, cgroup_prefix: str, *,
                verbose: bool) -> subprocess.Popen[bytes]:
    log = open(os.path.join(work, "agent.log"), "ab")  # handed to the child, closed right after
    agent = subprocess.Popen(
        [sys.executable, "-m", "kubelet", "--kubeconfig", kubeconfig, "--node-name", node_name,
         "--containerd-socket", socket, "--root-dir", os.path.join(work, "kubelet"),
         "--node-ip", "127.0.0.1", "--cgroup-prefix", cgroup_prefix,
         "--server-port", str(free_port()), "--server-address", "127.0.0.1", *(["-v"] if verbose else [])],
        cwd=REPO, stdout=log, stderr=log, start_new_session=True)
    log.close()
    return agent


async def stack_round(url: str, node_name: str, agent: subprocess.Popen[bytes], count: int,
                      burst: bool) -> tuple[list[float], list[float], float]:
    async with ApiClient(url) as api:
        await wait_node_ready(api, node_name, agent)
        return await through_the_stack(api, node_name, count, burst=burst)


def stop_agent(agent: subprocess.Popen[bytes]) -> None:
    if agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        agent.wait(20)


def run(args: argparse.Namespace) -> None:
    work = tempfile.mkdtemp(prefix="aiokube-bench-")
    etcd = start_etcd()
    node = start_test_containerd()
    agent: subprocess.Popen[bytes] | None = None
    try:
        raw, _ = asyncio.run(raw_cri(node.socket, args.raw, os.path.join(work, "raw-logs"), burst=False))
        print(f"raw CRI start (serial)            {percentiles(raw)}", flush=True)
        raw_burst, raw_wall = asyncio.run(raw_cri(node.socket, args.pods, os.path.join(work, "raw-logs"),
                                                  burst=True))
        print(f"raw CRI start (burst, info)       {percentiles(raw_burst)}")
        print(f"raw burst of {args.pods} (info): all started after {raw_wall:.2f} s", flush=True)
        with running_apiserver(etcd.url, "/bench") as url:
            kubeconfig = os.path.join(work, "kubeconfig")
            write_kubeconfig(kubeconfig, url)
            node_name = "bench-node"
            agent = start_agent(work, kubeconfig, node_name, node.socket, node.config.cgroup_prefix,
                                verbose=args.keep_logs)
            serial, serial_accepted, _ = asyncio.run(stack_round(url, node_name, agent, args.pods, burst=False))
            print(f"POST -> Running (serial)          {percentiles(serial)}")
            print(f"POST answered -> Running (serial) {percentiles(serial_accepted)}")
            for line in verdicts(serial, raw):
                print(line)
            print("burst figures below are informational (no target: they measure queueing on the node)",
                  flush=True)
            wait_runtime_empty(node.socket)
            burst, burst_accepted, wall = asyncio.run(stack_round(url, node_name, agent, args.pods, burst=True))
            print(f"POST -> Running (burst, info)     {percentiles(burst)}")
            print(f"POST answered -> Running (burst, info) {percentiles(burst_accepted)}")
            print(f"burst of {args.pods} pods (info): all Running after {wall:.2f} s")
            wait_runtime_empty(node.socket)
            if args.steady_pods:
                asyncio.run(steady_round(url, node_name, agent, args.steady_pods, args.steady_window))
                wait_runtime_empty(node.socket)
            stop_agent(agent)  # before the API server goes: its open watch would stall the server's shutdown
    finally:
        if agent is not None:
            stop_agent(agent)
        node.cleanup()
        etcd.stop()
        shutil.rmtree(etcd.data_dir, ignore_errors=True)
        if args.keep_logs:
            print(f"agent log kept in {work}/agent.log")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--raw", type=int, default=20)
    parser.add_argument("--steady-pods", type=int, default=100, help="pods kept Running for CPU/RSS; 0 = skip")
    parser.add_argument("--steady-window", type=float, default=20.0, help="seconds of idle CPU measurement")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work dir (agent log) for a look")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
