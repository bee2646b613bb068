"""What the benchmarks share: running the control-plane processes they time, and reading their cost from /proc.

The benchmarks run as scripts (`.venv/bin/python bench/bench_x.py`) and put the repository root on sys.path
before importing this module as `bench.support`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiokube.client import ApiClient
from tests.support.etcd import EtcdProcess, free_port, start_etcd

ROOT = Path(__file__).resolve().parent.parent
CREATE_CONCURRENCY = 32


def spawn(argv: list[str], *, log: Path | None = None, quiet: bool = False,
          root: Path = ROOT) -> subprocess.Popen[bytes]:
    """Start a process in `root` (the repository, unless another copy of the code is measured), in its own
    session; its output goes to `log` when given, else stderr is dropped when `quiet`, else both stay on this
    terminal."""
    if log is not None:
        with open(log, "ab") as out:
            return subprocess.Popen(argv, cwd=root, stdout=out, stderr=out, start_new_session=True)
    return subprocess.Popen(argv, cwd=root, stderr=subprocess.DEVNULL if quiet else None)


def stop(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 15 s: the processes get to close their etcd leases and watches first."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Poll the API server's /readyz for up to 60 s, failing at once if it exits."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the API server exited")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the API server did not become ready")


def start_apiserver(etcd_url: str, etcd_prefix: str, *, log: Path | None = None, root: Path = ROOT,
                    workers: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m apiserver` (from `root`'s packages, with `--workers` when more than one) on a free loopback
    port; returns (process, base URL) once it is ready. One worker passes no flag, so a `root` older than the
    flag (bench_api_cpu.py's baseline) still starts."""
    return start_server(["apiserver", "--etcd-servers", etcd_url, "--etcd-prefix", etcd_prefix, "--log-level",
                         "warning", *(["--workers", str(workers)] if workers != 1 else [])], log=log, root=root)


def start_server(module_args: list[str], *, log: Path | None = None,
                 root: Path = ROOT) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m MODULE ARGS --port PORT` on a free loopback port; returns (process, base URL) once its /readyz
    answers 200, and stops it if it never does."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = spawn([sys.executable, "-m", *module_args, "--port", str(port)], log=log, root=root)
    try:
        wait_ready(url, process)
    except BaseException:
        stop(process)
        raise
    return process, url


@contextmanager
def etcd_and_workdir(prefix: str) -> Iterator[tuple[EtcdProcess, Path]]:
    """A private etcd and a scratch directory for one benchmark run, both removed at the end."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    etcd = start_etcd()
    try:
        yield etcd, workdir
    finally:
        etcd.stop()
        shutil.rmtree(etcd.data_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (fields 14 and 15 of /proc/PID/stat)."""
    # The command name in parentheses may hold spaces: split after its closing parenthesis.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    """A live process's peak resident set (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def create_all(client: ApiClient, resource: str, bodies: list[dict[str, Any]],
                     concurrency: int = CREATE_CONCURRENCY) -> None:
    """Create every body through the API, `concurrency` requests in flight."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker() -> None:
        while not queue.empty():
            await client.create(resource, queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
