"""Raw etcd anchor: compare-and-put transactions per second through aetcd, at several concurrencies.

This is what one Python process can push through etcd with no API server in between; the API benchmarks
print their figures beside it. Each worker owns one key and loops `txn(mod_revision == last) then put`,
exactly the shape of an API update.

`--server-path` measures instead what the API server itself does for a create: its storage layer's create
(`EtcdStorage.create`: compare mod_revision == 0 on a fresh key, then put, through aetcd's KV stub) on uvloop,
the API server's event loop. That path costs the client less than aetcd's `transaction()` on asyncio's own
loop, so it is printed as a second, informational anchor (issue 2 names the first).

    .venv/bin/python bench/bench_etcd_raw.py                       # starts a private etcd
    .venv/bin/python bench/bench_etcd_raw.py --etcd-servers http://127.0.0.1:2379 --duration 5
    .venv/bin/python bench/bench_etcd_raw.py --server-path
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

# Run as a script from the repository root: make `tests.support` importable for the private etcd.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aetcd

from bench.support import proc_cpu_seconds
from tests.support.etcd import EtcdProcess, start_etcd


@dataclass
class LevelResult:
    concurrency: int
    transactions: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.transactions / self.seconds

    def line(self) -> str:
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[int(len(ordered) * 0.99)] * 1000
        return (f"concurrency {self.concurrency:>4}: {self.per_second:>8.0f} txn/s   "
                f"p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   ({self.transactions} txns)")


async def compare_and_put_loop(client: aetcd.Client, key: bytes, value: bytes, deadline: float,
                               latencies: list[float]) -> int:
    last_revision = 0  # 0 = "does not exist yet": the first txn is a create
    done = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        succeeded, responses = await client.transaction(
            compare=[client.transactions.mod(key) == last_revision],
            success=[client.transactions.put(key, value)],
            failure=[],
        )
        if not succeeded:
            raise RuntimeError(f"compare-and-put on {key!r} lost its own race: the bench is broken")
        last_revision = responses[0].response_put.header.revision
        latencies.append(time.perf_counter() - started)
        done += 1
    return done


async def run_level(client: aetcd.Client, concurrency: int, duration: float, value: bytes) -> LevelResult:
    run = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + duration
    counts = await asyncio.gather(*(
        compare_and_put_loop(client, f"/bench-raw/{run}/{worker}".encode(), value, deadline, latencies)
        for worker in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.delete_prefix(f"/bench-raw/{run}/".encode())
    return LevelResult(concurrency, sum(counts), elapsed, latencies)


async def bench(endpoint: str, levels: list[int], duration: float, value_size: int) -> None:
    url = urlsplit(endpoint)
    client = aetcd.Client(host=url.hostname or "127.0.0.1", port=url.port or 2379)
    await client.connect()
    try:
        value = b"x" * value_size
        await run_level(client, 4, min(duration, 0.5), value)  # warm up the channel and etcd
        print(f"raw etcd compare-and-put via aetcd against {endpoint}, {value_size}-byte values, "
              f"{duration:.0f} s per level")
        for concurrency in levels:
            print(" ", (await run_level(client, concurrency, duration, value)).line(), flush=True)
    finally:
        await client.close()


async def server_path_bench(endpoint: str, levels: list[int], duration: float, value_size: int,
                            etcd_pid: int | None = None) -> None:
    """Prints each level and, given etcd's pid, the CPU per txn of this process and of etcd over the levels."""
    from apiserver.storage.etcd import EtcdStorage

    storage = EtcdStorage([endpoint])
    await storage.connect()
    value = b"x" * value_size
    runs: list[str] = []

    async def creates(prefix: str, deadline: float, latencies: list[float]) -> int:
        done = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await storage.create(f"{prefix}{done}", value)
            latencies.append(time.perf_counter() - started)
            done += 1
        return done

    async def level(concurrency: int, seconds: float) -> LevelResult:
        run = uuid.uuid4().hex[:8]
        latencies: list[float] = []
        started = time.perf_counter()
        counts = await asyncio.gather(*(creates(f"/bench-raw/{run}/{worker}/", started + seconds, latencies)
                                        for worker in range(concurrency)))
        elapsed = time.perf_counter() - started
        runs.append(run)
        return LevelResult(concurrency, sum(counts), elapsed, latencies)

    try:
        await level(4, min(duration, 0.5))
        print(f"the API server's etcd path (EtcdStorage.create on uvloop, fresh keys) against {endpoint}, "
              f"{value_size}-byte values, {duration:.0f} s per level")
        transactions = 0
        client_before, etcd_before = time.process_time(), proc_cpu_seconds(etcd_pid) if etcd_pid else 0.0
        for concurrency in levels:
            result = await level(concurrency, duration)
            transactions += result.transactions
            print(" ", result.line(), flush=True)
        if etcd_pid is not None and transactions:
            client = (time.process_time() - client_before) / transactions * 1000
            etcd = (proc_cpu_seconds(etcd_pid) - etcd_before) / transactions * 1000
            print(f"  CPU per txn: client {client:.3f} ms, etcd {etcd:.3f} ms", flush=True)
    finally:
        await storage.close()
        url = urlsplit(endpoint)
        cleaner = aetcd.Client(host=url.hostname or "127.0.0.1", port=url.port or 2379)
        await cleaner.connect()
        try:
            for run in runs:
                await cleaner.delete_prefix(f"/bench-raw/{run}/".encode())
        finally:
            await cleaner.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etcd-servers", default="",
                        help="etcd endpoint(s), comma-separated; the first is used. Default: a private etcd")
    parser.add_argument("--concurrency", default="1,10,50,100", help="comma-separated in-flight levels")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per level")
    parser.add_argument("--value-size", type=int, default=1600, help="bytes per value (a typical pod is ~1.6 KB)")
    parser.add_argument("--server-path", action="store_true",
                        help="measure the API server's own create path (EtcdStorage.create on uvloop)")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",") if level]

    private: EtcdProcess | None = None
    endpoint = args.etcd_servers.split(",")[0] if args.etcd_servers else ""
    if not endpoint:
        private = start_etcd()
        endpoint = private.url
    try:
        if args.server_path:
            import uvloop

            uvloop.run(server_path_bench(endpoint, levels, args.duration, args.value_size,
                                         private.process.pid if private is not None else None))
        else:
            asyncio.run(bench(endpoint, levels, args.duration, args.value_size))
    finally:
        if private is not None:
            private.stop()
            shutil.rmtree(private.data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
