"""Two `python -m scheduler --leader-elect` processes with short lease flags: only the Lease holder schedules;
SIGKILL it (no release) and the other takes the Lease once it expires and binds new pods."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from aiokube.api.errors import ApiError
from aiokube.client import ApiClient
from tests.unit.scheduler_fixtures import make_node, make_pod

pytestmark = pytest.mark.etcd
ROOT = Path(__file__).resolve().parents[2]
# Short enough for a quick test, long enough that a loaded 2-core machine renews in time.
LEASE_FLAGS = ["--lease-duration", "3", "--renew-deadline", "2", "--retry-period", "0.3"]
SYNCED = b"caches synced"


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
        f"clusters: [{{name: t, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: t, user: {}}]\ncontexts: [{name: t, context: {cluster: t, user: t}}]\n")
    return path


def start(kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen([sys.executable, "-m", "scheduler", "--kubeconfig", str(kubeconfig),
                                 "--leader-elect", *LEASE_FLAGS], cwd=ROOT, stderr=stderr)


async def wait_for(check: Callable[[], Awaitable[Any]], within: float) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within}s (last: {result!r})")
        await asyncio.sleep(0.1)


async def test_two_schedulers_fail_over(apiserver: str, tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", apiserver)
    logs = {i: tmp_path / f"scheduler-{i}.log" for i in range(2)}
    processes = [start(kubeconfig, logs[i]) for i in range(2)]
    by_pid = {p.pid: i for i, p in enumerate(processes)}
    try:
        async with ApiClient(server=apiserver) as client:
            await client.create("nodes", make_node("n1"))

            async def holder() -> int | None:
                try:
                    lease = await client.get("leases", "aiokube-scheduler", namespace="kube-system")
                except ApiError:
                    return None
                identity = str(lease["spec"].get("holderIdentity") or "")
                pid = int(identity.rsplit("_", 1)[-1]) if "_" in identity else 0
                return pid if pid in by_pid else None

            async def bound(name: str) -> str:
                return str((await client.get("pods", name, namespace="default"))["spec"].get("nodeName") or "")

            leader_pid = await wait_for(holder, 20)
            leader, follower = by_pid[leader_pid], 1 - by_pid[leader_pid]
            await client.create("pods", make_pod("first", cpu="100m"))
            assert await wait_for(lambda: bound("first"), 15) == "n1"
            # Only the leader ever started its informers and scheduling loop.
            assert SYNCED in logs[leader].read_bytes()
            assert SYNCED not in logs[follower].read_bytes()

            processes[leader].send_signal(signal.SIGKILL)
            processes[leader].wait(10)
            await client.create("pods", make_pod("second", cpu="100m"))
            # The killed leader never released the Lease: the follower waits out the lease duration.
            assert await wait_for(lambda: bound("second"), 20) == "n1"
            assert await holder() == processes[follower].pid
            assert SYNCED in logs[follower].read_bytes()
        processes[follower].send_signal(signal.SIGTERM)
        assert processes[follower].wait(15) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
