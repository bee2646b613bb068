"""Start and stop a private etcd for tests: its own data dir, free loopback ports, ended by PID."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support.processes import terminate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EtcdProcess:
    url: str
    data_dir: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        terminate(self.process, 10)


def start_etcd(data_dir: str | None = None, *, extra_args: list[str] | None = None,
               client_port: int | None = None, peer_port: int | None = None) -> EtcdProcess:
    """Start etcd; pass the same data_dir and ports again to restart it on its existing data."""
    binary = shutil.which("etcd")
    if binary is None:
        raise RuntimeError("etcd is not installed: run `bash deploy/install.sh` (Debian package etcd-server)")
    data_dir = data_dir or tempfile.mkdtemp(prefix="aiokube-etcd-")
    client_port, peer_port = client_port or free_port(), peer_port or free_port()
    url = f"http://127.0.0.1:{client_port}"
    log = open(os.path.join(data_dir, "etcd.log"), "ab")  # closed right after the child inherits it
    args = [
        binary,
        "--name", "test",
        "--data-dir", os.path.join(data_dir, "data"),
        "--listen-client-urls", url,
        "--advertise-client-urls", url,
        "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
        "--initial-cluster", f"test=http://127.0.0.1:{peer_port}",
        "--experimental-watch-progress-notify-interval", "5s",
        "--unsafe-no-fsync",
        *(extra_args or []),
    ]
    process = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"etcd exited with {process.returncode}; see {data_dir}/etcd.log")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if b"true" in response.read():
                    return EtcdProcess(url, data_dir, process)
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"etcd did not become healthy; see {data_dir}/etcd.log")


class RestartableEtcd:
    """A private etcd that a test stops and starts again on the same data dir and ports (to test reconnection)."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.client_port, self.peer_port = free_port(), free_port()
        self.process = start_etcd(data_dir, client_port=self.client_port, peer_port=self.peer_port)

    @property
    def url(self) -> str:
        return self.process.url

    def stop(self) -> None:
        self.process.stop()

    def start(self) -> None:
        self.process = start_etcd(self.data_dir, client_port=self.client_port, peer_port=self.peer_port)


@contextmanager
def restartable_etcd(prefix: str) -> Iterator[RestartableEtcd]:
    """A RestartableEtcd in a fresh temp dir, stopped and its data removed on exit."""
    data_dir = tempfile.mkdtemp(prefix=prefix)
    try:
        etcd = RestartableEtcd(data_dir)
        try:
            yield etcd
        finally:
            etcd.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def etcd_watcher_count(url: str) -> int:
    """etcd's own count of server-side watchers, to prove that watches are cancelled."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    match = re.search(r"^etcd_debugging_mvcc_watcher_total (\S+)$", text, re.MULTILINE)
    assert match, "etcd /metrics has no etcd_debugging_mvcc_watcher_total"
    return int(float(match.group(1)))
