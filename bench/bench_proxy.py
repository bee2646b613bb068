"""Service proxy latency: from an EndpointSlice change (the API write returning) to the nftables rule being
live in EVERY node's kernel, with 1,000 Services, beside its raw anchor measured in the same run.

    .venv/bin/python bench/bench_proxy.py [--services 1000] [--changes 20] [--nodes 3]   (root: builds netns)
                                          [--proxy-mode nftables|iptables]

Starts a private etcd, the API server, N node network namespaces and one `python -m proxy` per node programming
it, creates the Services (2 ready endpoints each), waits for the initial sync on every node, then flips one
endpoint's readiness per change and polls `nft list chain` of that Service on all nodes at once until each shows
the new endpoint count (pausing POLL_PAUSE between polls so the pollers do not starve the proxies: the figures
are therefore up to ~50 ms + one poll coarse). Prints:
  initial   seconds from proxies' start until all Services are in the service-ips map of every node
  change    p50/p90/max ms from the API write to the rule being live on every node (the slowest node; includes
            the ~100 ms debounce), and the same over single nodes
  raw       p50 ms of one `nft -f` that rewrites one Service chain directly (the kernel + nft floor), and of
            one `nft list chain` poll (the measuring instrument's own cost)
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
POLL_PAUSE = 0.05
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


def nft(node: netns.NodeNetwork, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["nsenter", f"--net={node.netns_path}", "nft", *args], input=stdin,
                          capture_output=True, text=True, timeout=30).stdout


async def nft_async(node: netns.NodeNetwork, *args: str) -> str:
    return await run_async(node, "nft", *args)


async def run_async(node: netns.NodeNetwork, *argv: str) -> str:
    """A command in `node`'s namespace without blocking the loop, so all nodes are polled at the same time."""
    process = await asyncio.create_subprocess_exec("nsenter", f"--net={node.netns_path}", *argv,
                                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out, _ = await process.communicate()
    return out.decode()


async def programmed(node: netns.NodeNetwork, mode: str) -> int:
    """How many Services have ClusterIP rules on `node`."""
    if mode == "iptables":
        return (await run_async(node, "iptables", "-w", "-t", "nat", "-S", iptables.SERVICES)).count("cluster IP")
    return (await nft_async(node, "list", "map", "ip", "aiokube", "service-ips")).count(": goto svc-")


async def endpoint_count(node: netns.NodeNetwork, mode: str, i: int) -> int:
    """How many endpoints Service s{i}'s balancing rules on `node` choose from."""
    port = service_ports([service(i)], [endpoint_slice(i)])[0]
    if mode == "iptables":
        chain = iptables.service_chain(port)
        return (await run_async(node, "iptables", "-w", "-t", "nat", "-S", chain)).count("-j AIOKUBE-SEP-")
    listing = await nft_async(node, "list", "chain", "ip", "aiokube", service_chain(port))
    return 2 if "mod 2" in listing else 1 if "mod 1" in listing else 0


async def live_after(node: netns.NodeNetwork, mode: str, i: int, expect: int, written: float) -> float:
    """Seconds from `written` until Service s{i} on `node` balances over `expect` endpoints."""
    while await endpoint_count(node, mode, i) != expect:
        if time.monotonic() - written > 10:
            raise SystemExit(f"change not live on {node.netns_name} within 10 s")
        # One poll costs ~80 ms of CPU with 1,000 Services; N pollers back to back would starve the N proxies
        # being measured on a small machine, so leave the CPU to them between polls.
        await asyncio.sleep(POLL_PAUSE)
    return time.monotonic() - written


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
        try:
            started = time.monotonic()
            for each in nodes:
                while await programmed(each, mode) < count:
                    if time.monotonic() - started > 180:
                        raise SystemExit(f"the proxy of {each.netns_name} did not program every Service in 180 s")
                    await asyncio.sleep(0.1)
            print(f"initial   {time.monotonic() - started:.2f} s until all {count} Services were programmed "
                  f"on all {len(nodes)} nodes")
            every_node, single_node = [], []
            for n in range(changes):
                i = (n * 37) % count
                body = (await api.get(f"{SLICES}/s{i}-1")).json()
                now_ready = not body["endpoints"][1]["conditions"]["ready"]
                body["endpoints"][1]["conditions"]["ready"] = now_ready
                expect = 2 if now_ready else 1
                (await api.put(f"{SLICES}/s{i}-1", json=body)).raise_for_status()
                written = time.monotonic()
                per_node = await asyncio.gather(*(live_after(each, mode, i, expect, written) for each in nodes))
                single_node += [seconds * 1000 for seconds in per_node]
                every_node.append(max(per_node) * 1000)
            for label, latencies in (("every node", every_node), ("one node", single_node)):
                print(f"change    {label}: p50 {statistics.median(latencies):.0f} ms  "
                      f"p90 {percentile(latencies, 0.9):.0f} ms  max {max(latencies):.0f} ms  "
                      f"over {changes} EndpointSlice changes x {len(nodes)} nodes")
            if mode == "iptables":
                return  # the raw anchor below is nft's
            chain = service_chain(service_ports([service(0)], [endpoint_slice(0)])[0])
            raw_write, raw_poll = [], []
            for _ in range(10):
                t = time.monotonic()
                nft(node, "-f", "-", stdin=f"flush chain ip aiokube {chain}\n"
                                           f"add rule ip aiokube {chain} meta l4proto tcp dnat to 10.244.1.1:8080\n")
                raw_write.append((time.monotonic() - t) * 1000)
                t = time.monotonic()
                nft(node, "list", "chain", "ip", "aiokube", chain)
                raw_poll.append((time.monotonic() - t) * 1000)
            print(f"raw       nft -f of one chain p50 {statistics.median(raw_write):.1f} ms; "
                  f"one nft list chain poll p50 {statistics.median(raw_poll):.1f} ms")
        finally:
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
            asyncio.run(measure(server, nodes, args.services, args.changes, workdir, args.proxy_log,
                                args.proxy_mode))
    finally:
        netns.delete_cluster_network(cluster_id)
        etcd.stop()
        shutil.rmtree(etcd.data_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
