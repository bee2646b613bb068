"""Server CPU per create, measured so that neighbours' load hardly matters: two API servers, alternating batches.

Starts a private etcd and two `python -m apiserver` processes on it: "tree" runs this checkout, "baseline"
runs another checkout (`--baseline-root DIR`, a directory holding an older `apiserver/` and `aiokube/`;
default: this checkout again, which shows the method's own noise). Batches of creates at concurrency `-c`
alternate between the two servers, and each server's CPU is read from /proc around its own batches, so a
change's effect is the difference between the two lines of one run, not between two runs on a machine whose
load drifts. Beside them: the raw aetcd compare-and-put (the issue's anchor), CPU per transaction for this
process (the client) and for etcd.

`--floors` measures, instead of a baseline, the two floors under a create (bench/floor_server.py): uvicorn
serving the same request without any API-server work ("http floor"), and the same plus the API server's etcd
create ("etcd floor"). The differences of their loop-thread CPU split a create into HTTP serving, the etcd
call and the API server's own handling; one process's creates top out near one over its loop thread's CPU.

    .venv/bin/python bench/bench_api_cpu.py [--baseline-root /tmp/old | --floors] [--rounds 6] [--batch 600] [-c 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aetcd

from bench.bench_api import NS_PATH, PAYLOAD, LeanHttp
from bench.support import ROOT, etcd_and_workdir, proc_cpu_seconds, start_apiserver, start_server, stop


@dataclass
class Tally:
    """CPU seconds one server and etcd spent over that server's batches, and how many creates they made."""

    label: str
    server_seconds: float = 0.0
    etcd_seconds: float = 0.0
    creates: int = 0
    per_batch: list[float] = field(default_factory=list)  # server ms per create of each batch
    threads: dict[str, float] = field(default_factory=dict)  # server CPU seconds by thread kind

    def loop_ms(self) -> float:
        """The event-loop thread's CPU per create, in ms (the one thread a process's request rate is bound by)."""
        return self.threads.get("loop", 0.0) / self.creates * 1000

    def line(self) -> str:
        spread = f"{min(self.per_batch):.3f}..{max(self.per_batch):.3f}" if self.per_batch else "-"
        by_thread = ", ".join(f"{name} {seconds / self.creates * 1000:.3f}"
                              for name, seconds in sorted(self.threads.items(), key=lambda item: -item[1]) if seconds)
        return (f"{self.label:<10} server {self.server_seconds / self.creates * 1000:.3f} ms CPU per create "
                f"(batches {spread}; by thread: {by_thread}), etcd {self.etcd_seconds / self.creates * 1000:.3f} "
                f"ms per txn, {self.creates} creates")


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """A process's CPU seconds by thread kind: "loop" (the main thread: event loop and request handling) and
    the other threads by name (grpc core's "event_engine" I/O threads, "python" for grpc's completion-queue
    poller and any worker thread). Threads that ended meanwhile are missed, which is why the totals above come
    from the process itself."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue  # the thread ended
        name = "loop" if tid == str(pid) else stat.split("(", 1)[1].rsplit(")", 1)[0]
        fields = stat.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


async def create_batch(client: LeanHttp, concurrency: int, count: int) -> int:
    """`count` ConfigMap creates with `concurrency` in flight (the bench_api payload)."""
    run = uuid.uuid4().hex[:8]
    queue = iter(range(count))

    async def worker() -> int:
        done = 0
        for i in queue:
            response = await client.post(NS_PATH, json={"metadata": {"name": f"c-{run}-{i}"},
                                                        "data": {"v": PAYLOAD}})
            if response.status_code != 201:
                raise RuntimeError(response.text)
            done += 1
        return done

    return sum(await asyncio.gather(*(worker() for _ in range(concurrency))))


async def measured_batch(client: LeanHttp, tally: Tally, server_pid: int, etcd_pid: int,
                         concurrency: int, count: int) -> None:
    server_before, etcd_before = proc_cpu_seconds(server_pid), proc_cpu_seconds(etcd_pid)
    threads_before = thread_cpu_seconds(server_pid)
    done = await create_batch(client, concurrency, count)
    server_spent = proc_cpu_seconds(server_pid) - server_before
    for name, seconds in thread_cpu_seconds(server_pid).items():
        tally.threads[name] = tally.threads.get(name, 0.0) + seconds - threads_before.get(name, 0.0)
    tally.server_seconds += server_spent
    tally.etcd_seconds += proc_cpu_seconds(etcd_pid) - etcd_before
    tally.creates += done
    tally.per_batch.append(server_spent / done * 1000)


async def raw_anchor(etcd_url: str, etcd_pid: int, concurrency: int, count: int) -> str:
    """CPU per raw compare-and-put (create) through aetcd: this process's and etcd's."""
    url = urlsplit(etcd_url)
    client = aetcd.Client(host=url.hostname or "127.0.0.1", port=url.port or 2379)
    await client.connect()
    value = b"x" * 1600
    run = uuid.uuid4().hex[:8]
    keys = iter(range(count))

    async def worker() -> None:
        for i in keys:
            key = f"/bench-raw-cpu/{run}/{i}".encode()
            succeeded, _ = await client.transaction(compare=[client.transactions.mod(key) == 0],
                                                    success=[client.transactions.put(key, value)], failure=[])
            if not succeeded:
                raise RuntimeError("a fresh key existed: the bench is broken")

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm-up
        run, keys = uuid.uuid4().hex[:8], iter(range(count))
        own_before, etcd_before = time.process_time(), proc_cpu_seconds(etcd_pid)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        own, etcd = time.process_time() - own_before, proc_cpu_seconds(etcd_pid) - etcd_before
    finally:
        await client.close()
    return (f"{'raw txn':<10} client {own / count * 1000:.3f} ms CPU per txn, etcd {etcd / count * 1000:.3f} "
            f"ms per txn ({count} txns, c={concurrency})")


async def run(args: argparse.Namespace, etcd_url: str, etcd_pid: int, servers: dict[str, tuple[int, str]]) -> None:
    print(await raw_anchor(etcd_url, etcd_pid, args.concurrency, args.batch * 2), flush=True)
    clients = {label: LeanHttp(url) for label, (_, url) in servers.items()}
    tallies = {label: Tally(label) for label in servers}
    try:
        for client in clients.values():  # warm-up: imports, caches, connections
            await create_batch(client, args.concurrency, args.batch // 2)
        for round_ in range(args.rounds):
            # Alternate which server goes first so a drift in load within a round favours neither.
            order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
            for label in order:
                await measured_batch(clients[label], tallies[label], servers[label][0], etcd_pid,
                                     args.concurrency, args.batch)
    finally:
        for client in clients.values():
            await client.aclose()
    for tally in tallies.values():
        print(tally.line(), flush=True)
    if FLOOR_HTTP in tallies and FLOOR_ETCD in tallies:
        print(decomposition(tallies["tree"], tallies[FLOOR_ETCD], tallies[FLOOR_HTTP]), flush=True)


FLOOR_HTTP, FLOOR_ETCD = "http floor", "etcd floor"


def start_floor_server(etcd_url: str, mode: str) -> tuple[subprocess.Popen[bytes], str]:
    """bench/floor_server.py in `mode` ("http" or "etcd") on a free loopback port, once it is ready."""
    return start_server(["bench.floor_server", "--mode", mode, "--etcd-servers", etcd_url])


def decomposition(create: Tally, etcd_floor: Tally, http_floor: Tally) -> str:
    """A create's loop-thread CPU split by the floors, with the create rate each leaves one process."""
    loop = {tally.label: tally.loop_ms() for tally in (create, etcd_floor, http_floor)}
    http, etcd, full = loop[http_floor.label], loop[etcd_floor.label], loop[create.label]
    return (f"loop thread per create: HTTP serving {http:.3f} ms + etcd create {etcd - http:.3f} ms + API-server "
            f"handling {full - etcd:.3f} ms = {full:.3f} ms; one process tops out near {1000 / http:.0f}/s "
            f"(http floor), {1000 / etcd:.0f}/s (etcd floor), {1000 / full:.0f}/s (creates)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-root", type=Path, default=None, help="default: this checkout again")
    parser.add_argument("--floors", action="store_true",
                        help="measure the http and etcd floors (bench/floor_server.py) instead of a baseline")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=600, help="creates per batch")
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    args = parser.parse_args()
    with etcd_and_workdir("bench-api-cpu-") as (etcd, _):
        others: dict[str, subprocess.Popen[bytes]] = {}
        tree, tree_url = start_apiserver(etcd.url, "/bench-tree")
        try:
            servers = {"tree": (tree.pid, tree_url)}
            if args.floors:
                for label, mode in ((FLOOR_ETCD, "etcd"), (FLOOR_HTTP, "http")):
                    others[label], url = start_floor_server(etcd.url, mode)
                    servers[label] = (others[label].pid, url)
            if args.baseline_root is not None or not args.floors:
                others["baseline"], url = start_apiserver(etcd.url, "/bench-baseline",
                                                          root=args.baseline_root or ROOT)
                servers["baseline"] = (others["baseline"].pid, url)
            asyncio.run(run(args, etcd.url, etcd.process.pid, servers))
        finally:
            stop(tree)
            for process in others.values():
                stop(process)


if __name__ == "__main__":
    main()
