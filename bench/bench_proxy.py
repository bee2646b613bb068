"""Service proxy latency: from an EndpointSlice change (the API write being sent) to the rule being live in
EVERY node's kernel, with 1,000 Services, beside its raw anchor measured in the same run.

    .venv/bin/python bench/bench_proxy.py [--services 1000] [--changes 20] [--nodes 3]   (root: builds netns)
                                          [--proxy-mode nftables|iptables]

Starts a private etcd, the API server, N node network namespaces and one `python -m proxy` per node programming
it, creates the Services (2 ready endpoints each), waits for the initial sync on every node, then flips one
endpoint's readiness per change and waits until every node's kernel has committed the changed Service's
balancing chain with the new endpoint count.

"Live" is observed with `nft monitor` in each node's namespace: the kernel reports every committed transaction
(closed by a `# new generation` line) as it happens, so the instrument costs nothing while it waits and is not
coarser than the loop reading its output. (Polling `nft list chain` instead costs ~80 ms of CPU per poll with
1,000 Services, enough to starve the proxies being measured on a 2-core machine.) The iptables mode is
measured through iptables-nft, the host's `iptables`: iptables-legacy commits are invisible to `nft monitor`.
Prints:
  initial   seconds from proxies' start until all Services are programmed on every node (polled)
  change    p50/p90/max ms from the API write to the rule being committed on every node (the slowest node;
            includes the proxy's ~100 ms debounce), and the same over single nodes
  raw       p50 ms of one `nft -f` (`iptables-restore --noflush` in iptables mode) that rewrites one Service
            chain directly (the kernel + tool floor), and how long after that command started the monitor
            reported its commit (the floor as this instrument sees it)
Everything started is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx

from aiokube.cluster import netns
from aiokube.cluster.kubeconfig import write_kubeconfig
from proxy import iptables
from proxy.model import service_ports
from proxy.nftables import service_chain
from tests.support.apiserver import running_apiserver
from tests.support.etcd import start_etcd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


def service(i: int) -> dict:
    return {"metadata": {"name": f"s{i}", "namespace": "default"},
            "spec": {"type": "ClusterIP", "clusterIP": f"10.96.{10 + i // 250}.{i % 250 + 1}",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}}


def endpoint_slice(i: int) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i}-1", "namespace": "default", "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.244.{j}.{i % 250 + 1}"], "conditions": {"ready": True}}
                          for j in (1, 2)]}


async def nft_async(node: netns.NodeNetwork, *args: str) -> str:
    return await run_async(node, "nft", *args)


async def run_async(node: netns.NodeNetwork, *argv: str, stdin: str | None = None) -> str:
    """A command in `node`'s namespace without blocking the loop, so all nodes are polled at the same time."""
    process = await asyncio.create_subprocess_exec("nsenter", f"--net={node.netns_path}", *argv,
                                                   stdin=subprocess.PIPE if stdin is not None else None,
                                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out, _ = await process.communicate(stdin.encode() if stdin is not None else None)
    return out.decode()


async def programmed(node: netns.NodeNetwork, mode: str) -> int:
    """How many Services have ClusterIP rules on `node`."""
    if mode == "iptables":
        return (await run_async(node, "iptables", "-w", "-t", "nat", "-S", iptables.SERVICES)).count("cluster IP")
    return (await nft_async(node, "list", "map", "ip", "aiokube", "service-ips")).count(": goto svc-")


class BenchError(Exception):
    """The proxies did not do what is measured in time: the run is void."""


def balancing_chain(mode: str, i: int) -> str:
    """The name of Service s{i}'s ClusterIP balancing chain in `mode`."""
    port = service_ports([service(i)], [endpoint_slice(i)])[0]
    return iptables.service_chain(port) if mode == "iptables" else service_chain(port)


def endpoints_in_rule(line: str) -> int:
    """How many endpoints one rule (as `nft monitor` prints it) sends traffic to: nftables' one `numgen random
    mod N` rule, or one per iptables-nft rule jumping to an AIOKUBE-SEP- chain."""
    words = line.split()
    if "mod" in words:
        return int(words[words.index("mod") + 1])
    return line.count(f"{iptables.PREFIX}SEP-")


class CommitWatcher:
    """`nft monitor` in one node's namespace: per chain, (endpoint count, monotonic time) of every committed
    transaction that rewrote it."""

    def __init__(self, node: netns.NodeNetwork) -> None:
        self.node = node
        self.commits: dict[str, list[tuple[int, float]]] = {}
        self.generations = 0  # transactions reported so far
        self._committed = asyncio.Condition()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            "nsenter", f"--net={self.node.netns_path}", "nft", "monitor", stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        self._reader = asyncio.create_task(self._read())
        # nft loads the whole ruleset before it subscribes (long with 1,000 Services): commit an empty probe
        # transaction until the monitor reports one, so no measured commit can slip past before it listens.
        while True:
            await run_async(self.node, "nft", "-f", "-", stdin="add table ip aiokube-bench-probe\n"
                                                               "delete table ip aiokube-bench-probe\n")
            try:
                async with asyncio.timeout(1), self._committed:
                    await self._committed.wait_for(lambda: self.generations > 0)
                return
            except TimeoutError:
                continue

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()
        if self._reader is not None:
            self._reader.cancel()

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        rewritten: dict[str, int] = {}  # chain -> endpoints its added rules reach, in this transaction
        async for raw in self._process.stdout:
            line = raw.decode(errors="replace")
            if line.startswith("# new generation"):
                now = time.monotonic()
                for chain, count in rewritten.items():
                    self.commits.setdefault(chain, []).append((count, now))
                rewritten = {}
                self.generations += 1
                async with self._committed:
                    self._committed.notify_all()
            elif line.startswith("add rule "):
                chain = line.split()[4].strip('"')  # add rule <family> <table> <chain> …
                rewritten[chain] = rewritten.get(chain, 0) + endpoints_in_rule(line)

    async def live_after(self, chain: str, expect: int, written: float, limit_seconds: float = 10.0) -> float:
        """Seconds from `written` until a transaction committed `chain` balancing over `expect` endpoints."""
        def seen() -> float | None:
            return next((t - written for count, t in self.commits.get(chain, []) if t >= written
                         and count == expect), None)
        try:
            async with asyncio.timeout(limit_seconds), self._committed:
                await self._committed.wait_for(lambda: seen() is not None)
        except TimeoutError:
            raise BenchError(f"change not live on {self.node.netns_name} within {limit_seconds} s") from None
        latency = seen()
        assert latency is not None
        return latency


def one_chain_rewrite(mode: str, chain: str, endpoints: int) -> tuple[list[str], str]:
    """The command and input that rewrite `chain` alone to balance over `endpoints` (dummy) endpoints."""
    if mode == "iptables":
        port = service_ports([service(0)], [endpoint_slice(0)])[0]
        target = iptables.endpoint_chain(port, port.endpoints[0])
        rules = "".join(f"-A {chain} -j {target}\n" for _ in range(endpoints))
        return ["iptables-restore", "-w", "--noflush"], f"*nat\n:{chain} - [0:0]\n{rules}COMMIT\n"
    return ["nft", "-f", "-"], (f"flush chain ip aiokube {chain}\n"
                                f"add rule ip aiokube {chain} numgen random mod {endpoints} vmap {{ 0 : drop }}\n")


async def raw_anchor(mode: str, node: netns.NodeNetwork, watcher: CommitWatcher) -> tuple[list[float], list[float]]:
    """ms until one direct rewrite of one Service chain returns, and until the monitor reports its commit: the
    floor under the proxy's figures (the proxy will put the chain back at its next full resync)."""
    chain = balancing_chain(mode, 0)
    raw_write, raw_seen = [], []
    for n in range(10):
        argv, script = one_chain_rewrite(mode, chain, n + 3)
        started = time.monotonic()
        await run_async(node, *argv, stdin=script)
        raw_write.append((time.monotonic() - started) * 1000)
        raw_seen.append(await watcher.live_after(chain, n + 3, started) * 1000)
    return raw_write, raw_seen


async def create_all(api: httpx.AsyncClient, count: int) -> None:
    limit = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with limit:
            (await api.post("/api/v1/namespaces/default/services", json=service(i))).raise_for_status()
            (await api.post(SLICES, json=endpoint_slice(i))).raise_for_status()

    await asyncio.gather(*(one(i) for i in range(count)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(server: str, nodes: list[netns.NodeNetwork], count: int, changes: int, workdir: str,
                  proxy_log: str | None, mode: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as api:
        started = time.monotonic()
        await create_all(api, count)
        print(f"created {count} Services + EndpointSlices in {time.monotonic() - started:.1f}s")
        kubeconfig = os.path.join(workdir, "kubeconfig")
        write_kubeconfig(kubeconfig, server)
        log = open(proxy_log, "w") if proxy_log else subprocess.DEVNULL  # noqa: ASYNC230  (a log file opened once)
        proxies = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy", "--kubeconfig", kubeconfig, "--node-name", f"node{node.index}",
            "--netns-exec", node.netns_path, "--no-routes", "--proxy-mode", mode, *(["-v"] if proxy_log else []),
            cwd=REPO, stderr=log)
            for node in nodes]
        node = nodes[0]
        watchers = [CommitWatcher(each) for each in nodes]
        try:
            started = time.monotonic()
            for each in nodes:
                while await programmed(each, mode) < count:
                    if time.monotonic() - started > 180:
                        raise BenchError(f"the proxy of {each.netns_name} did not program every Service in 180 s")
                    await asyncio.sleep(0.1)
            print(f"initial   {time.monotonic() - started:.2f} s until all {count} Services were programmed "
                  f"on all {len(nodes)} nodes")
            for watcher in watchers:
                await watcher.start()
            every_node, single_node = [], []
            for n in range(changes):
                i = (n * 37) % count
                body = (await api.get(f"{SLICES}/s{i}-1")).json()
                now_ready = not body["endpoints"][1]["conditions"]["ready"]
                body["endpoints"][1]["conditions"]["ready"] = now_ready
                expect = 2 if now_ready else 1
                # Timed from before the write: a proxy may see the watch event before the PUT's response arrives.
                written = time.monotonic()
                (await api.put(f"{SLICES}/s{i}-1", json=body)).raise_for_status()
                chain = balancing_chain(mode, i)
                async with asyncio.TaskGroup() as waits:  # the first failure cancels the other waits
                    tasks = [waits.create_task(w.live_after(chain, expect, written)) for w in watchers]
                per_node = [task.result() for task in tasks]
                single_node += [seconds * 1000 for seconds in per_node]
                every_node.append(max(per_node) * 1000)
            for label, latencies in (("every node", every_node), ("one node", single_node)):
                print(f"change    {label}: p50 {statistics.median(latencies):.0f} ms  "
                      f"p90 {percentile(latencies, 0.9):.0f} ms  max {max(latencies):.0f} ms  "
                      f"over {changes} EndpointSlice changes x {len(nodes)} nodes")
            raw_write, raw_seen = await raw_anchor(mode, node, watchers[0])
            tool = "iptables-restore" if mode == "iptables" else "nft -f"
            print(f"raw       {tool} of one chain returns after p50 {statistics.median(raw_write):.1f} ms; the "
                  f"monitor reports its commit p50 {statistics.median(raw_seen):.1f} ms after it started")
        finally:
            for watcher in watchers:
                await watcher.stop()
            for proxy in proxies:
                proxy.terminate()
                await proxy.wait()
            for each in nodes:
                cleanup = await asyncio.create_subprocess_exec(sys.executable, "-m", "proxy", "--cleanup",
                                                               "--netns-exec", each.netns_path, cwd=REPO)
                await cleanup.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=3, help="node namespaces, one proxy each")
    parser.add_argument("--proxy-mode", choices=("nftables", "iptables"), default="nftables")
    parser.add_argument("--proxy-log", help="write the proxy's verbose log (sync timings) to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_proxy needs root (it builds a network namespace)")
    etcd = start_etcd()
    cluster_id = uuid.uuid4().hex[:6]
    workdir = tempfile.mkdtemp(prefix="bench-proxy-")
    try:
        nodes = [netns.create_node_network(cluster_id, index) for index in range(1, args.nodes + 1)]
        with running_apiserver(etcd.url, f"/bench-{cluster_id}") as server:
            try:
                asyncio.run(measure(server, nodes, args.services, args.changes, workdir, args.proxy_log,
                                    args.proxy_mode))
            except* BenchError as errors:
                raise SystemExit("; ".join(str(error) for error in errors.exceptions)) from None
    finally:
        netns.delete_cluster_network(cluster_id)
        etcd.stop()
        shutil.rmtree(etcd.data_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
