"""`python -m apiserver --workers N`: several server processes on one port (apiserver/workers.py).

Shown here: connections spread over the workers; a watch on one worker sees writes made through another, from
the resourceVersion that other worker returned; /metrics sums every worker; a worker that dies is replaced; a
worker that cannot start stops the whole server; SIGTERM stops every worker; a killed supervisor leaves none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from aiokube.cluster import pki
from apiserver.workers import metrics_directory
from tests.support.etcd import free_port
from tests.support.processes import terminate, wait_until_ready

pytestmark = pytest.mark.etcd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


class WorkerServer:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def workers(self) -> set[int]:
        return _children(self.process.pid)

    def connections_by_worker(self) -> dict[int, int]:
        """Established connections each worker holds on the server port (from /proc)."""
        inodes = _established_inodes(self.port)
        out = {}
        for pid in self.workers():
            count = 0
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        count += 1
            except OSError:
                continue
            out[pid] = count
        return out


def _children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(child) for child in f.read().split()}
    except OSError:
        return set()


def _established_inodes(port: int) -> set[str]:
    """Inodes of the ESTABLISHED IPv4 TCP sockets whose local port is `port` (the server's side)."""
    out = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":
                out.add(fields[9])
    return out


def start(etcd_url: str, etcd_prefix: str, *extra: str, port: int | None = None) -> WorkerServer:
    port = port or free_port()
    process = subprocess.Popen([sys.executable, "-m", "apiserver", "--etcd-servers", etcd_url, "--etcd-prefix",
                                etcd_prefix, "--port", str(port), "--log-level", "warning", *extra],
                               cwd=ROOT, start_new_session=True)
    return WorkerServer(process, port)


def stop(server: WorkerServer) -> None:
    workers = server.workers()
    terminate(server.process, 15)
    for pid in workers:  # only if the supervisor failed to end them; each is checked by the tests themselves
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def two_workers(etcd_url: str, etcd_prefix: str) -> Iterator[WorkerServer]:
    server = start(etcd_url, etcd_prefix, "--workers", "2")
    try:
        wait_until_ready(server.process, f"{server.base}/readyz", "apiserver --workers 2")
        deadline = time.monotonic() + 30
        while len(server.workers()) < 2:
            assert time.monotonic() < deadline, "the supervisor did not start 2 workers"
            time.sleep(0.1)
        # Both workers listen once each answers; new connections reach either, so poll until every one is up.
        _wait_all_workers_serving(server)
        yield server
    finally:
        stop(server)


def _wait_all_workers_serving(server: WorkerServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    expected = len(server.workers())
    while True:
        clients = [httpx.Client(base_url=server.base, timeout=5) for _ in range(24)]
        try:
            if all(c.get("/readyz").status_code == 200 for c in clients):
                held = server.connections_by_worker()
                if len([pid for pid, n in held.items() if n]) == expected:
                    return
        except httpx.HTTPError:
            pass
        finally:
            for c in clients:
                c.close()
        assert time.monotonic() < deadline, f"not every worker is serving: {server.connections_by_worker()}"
        time.sleep(0.2)


def _create(client: httpx.Client, name: str) -> dict:
    response = client.post(CONFIGMAPS, json={"metadata": {"name": name}, "data": {"k": name}})
    assert response.status_code == 201, response.text
    return response.json()


def test_connections_spread_and_metrics_sum_every_worker(two_workers: WorkerServer) -> None:
    clients = [httpx.Client(base_url=two_workers.base, timeout=10) for _ in range(16)]
    try:
        for i, client in enumerate(clients):
            for j in range(3):
                _create(client, f"spread-{i}-{j}")
        held = two_workers.connections_by_worker()
        assert len(held) == 2 and all(count >= 1 for count in held.values()), held
        # Every worker counted its own creates; each worker's /metrics shows the sum.
        for client in clients[:4]:
            text = client.get("/metrics").text
            match = re.search(r'apiserver_request_total\{code="201",group="",resource="configmaps",'
                              r'subresource="",verb="create"\} ([0-9.e+]+)', text)
            assert match is not None, text[:2000]
            assert float(match.group(1)) == 48.0
    finally:
        for client in clients:
            client.close()


def test_a_watch_on_any_worker_sees_writes_made_through_another(two_workers: WorkerServer) -> None:
    with httpx.Client(base_url=two_workers.base, timeout=10) as writer:
        first = _create(writer, "before-watch")
    start_rv = first["metadata"]["resourceVersion"]
    received: dict[int, list[tuple[str, str]]] = {}
    ready = threading.Barrier(9)

    def watch(i: int) -> None:
        events: list[tuple[str, str]] = []
        received[i] = events
        with httpx.Client(base_url=two_workers.base, timeout=30) as client, client.stream(
                "GET", CONFIGMAPS, params={"watch": "1", "resourceVersion": start_rv, "timeoutSeconds": "20"}) as s:
            ready.wait(15)
            for line in s.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                events.append((event["type"], event["object"]["metadata"]["name"]))
                if len(events) == 3:
                    return

    threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(8)]
    for thread in threads:
        thread.start()
    ready.wait(15)
    time.sleep(0.3)  # every watch stream is registered with its worker's watch cache
    held = two_workers.connections_by_worker()
    assert all(count >= 1 for count in held.values()), f"the 8 watches did not reach both workers: {held}"
    names = []
    for i in range(3):  # each write on a fresh connection, so the writes go through either worker
        with httpx.Client(base_url=two_workers.base, timeout=10) as writer:
            names.append(_create(writer, f"after-watch-{i}")["metadata"]["name"])
    for thread in threads:
        thread.join(25)
    expected = [("ADDED", name) for name in names]
    assert all(received[i] == expected for i in range(8)), received


def test_a_dead_worker_is_replaced_and_sigterm_stops_all(two_workers: WorkerServer) -> None:
    before = two_workers.workers()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        now = two_workers.workers()
        if len(now) == 2 and victim not in now:
            break
        assert time.monotonic() < deadline, f"no replacement for worker {victim}: {now}"
        time.sleep(0.1)
    _wait_all_workers_serving(two_workers)
    with httpx.Client(base_url=two_workers.base, timeout=10) as client:
        _create(client, "after-replacement")
    assert two_workers.process.poll() is None

    workers = two_workers.workers()
    two_workers.process.send_signal(signal.SIGTERM)
    assert two_workers.process.wait(15) == 0
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}") or _is_zombie_or_gone(pid), f"worker {pid} outlived SIGTERM"


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_killed_supervisor_leaves_no_worker(etcd_url: str, etcd_prefix: str) -> None:
    server = start(etcd_url, etcd_prefix, "--workers", "2")
    try:
        wait_until_ready(server.process, f"{server.base}/readyz", "apiserver --workers 2")
        deadline = time.monotonic() + 20
        while len(server.workers()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        workers = server.workers()
        server.process.kill()
        server.process.wait()
        deadline = time.monotonic() + 15
        while not all(_is_zombie_or_gone(pid) for pid in workers):
            assert time.monotonic() < deadline, f"workers {workers} outlived their supervisor"
            time.sleep(0.1)
        # The killed supervisor could not remove its metrics directory; the next supervisor removes it.
        orphaned = metrics_directory(server.process.pid)
        assert os.path.isdir(orphaned)
        successor = start(etcd_url, etcd_prefix, "--workers", "2")
        try:
            wait_until_ready(successor.process, f"{successor.base}/readyz", "apiserver --workers 2")
            assert not os.path.exists(orphaned)
            assert os.path.isdir(metrics_directory(successor.process.pid))
        finally:
            stop(successor)
        assert not os.path.exists(metrics_directory(successor.process.pid))
    finally:
        stop(server)
        shutil.rmtree(metrics_directory(server.process.pid), ignore_errors=True)


def test_a_worker_that_cannot_start_stops_the_server(etcd_url: str, etcd_prefix: str, tmp_path) -> None:
    missing = str(tmp_path / "missing.pem")
    server = start(etcd_url, etcd_prefix, "--workers", "2", "--tls-cert-file", missing,
                   "--tls-private-key-file", missing)
    try:
        assert server.process.wait(30) != 0
        assert not server.workers()
    finally:
        stop(server)


def test_a_port_in_use_fails_at_once(etcd_url: str, etcd_prefix: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = start(etcd_url, etcd_prefix, "--workers", "2", port=port)
        try:
            assert server.process.wait(20) != 0
        finally:
            stop(server)


def test_workers_serve_https_with_client_certificates(etcd_url: str, etcd_prefix: str, tmp_path) -> None:
    ca = pki.create_ca()
    ca_file, _ = pki.write_pair(ca, str(tmp_path), "ca")
    serving = pki.issue_serving_cert(ca, "kube-apiserver", dns_names=["localhost"], ips=["127.0.0.1"])
    cert_file, key_file = pki.write_pair(serving, str(tmp_path), "apiserver")
    admin = ssl.create_default_context(cafile=ca_file)
    admin.load_cert_chain(*pki.write_pair(pki.issue_client_cert(ca, "admin", ("system:masters",)), str(tmp_path),
                                          "admin"))
    server = start(etcd_url, etcd_prefix, "--workers", "2", "--tls-cert-file", cert_file, "--tls-private-key-file",
                   key_file, "--client-ca-file", ca_file, "--authorization-mode", "RBAC")
    base = f"https://127.0.0.1:{server.port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", verify=admin, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.process.poll() is None and time.monotonic() < deadline, "https workers did not start"
            time.sleep(0.2)
        clients = [httpx.Client(base_url=base, verify=admin, timeout=10) for _ in range(16)]
        anonymous = httpx.Client(base_url=base, verify=ssl.create_default_context(cafile=ca_file), timeout=10)
        try:
            for i, client in enumerate(clients):
                _create(client, f"tls-{i}")
            assert all(count >= 1 for count in server.connections_by_worker().values())
            assert len(server.connections_by_worker()) == 2
            assert anonymous.get(CONFIGMAPS).status_code in (401, 403)
        finally:
            anonymous.close()
            for client in clients:
                client.close()
    finally:
        stop(server)
