"""`python -m apiserver` as a process: flags, readiness, and a prompt graceful exit on SIGTERM even with
watches open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.etcd import free_port
from tests.support.processes import wait_until_ready

pytestmark = pytest.mark.etcd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_serves_and_exits_promptly_on_sigterm(etcd_url: str, etcd_prefix: str) -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "apiserver", "--etcd-servers", etcd_url, "--etcd-prefix",
                                etcd_prefix, "--bind-address", "127.0.0.1", "--port", str(port),
                                "--log-level", "warning"], cwd=ROOT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, f"{base}/readyz", "apiserver")
        assert httpx.get(f"{base}/api/v1/namespaces/kube-system").status_code == 200
        with httpx.Client(timeout=10) as client, client.stream(
                "GET", f"{base}/api/v1/namespaces/default/configmaps?watch=1") as watch:
            time.sleep(0.5)  # the watch is established and idle
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(10)
            assert time.monotonic() - started < 3  # open watches do not hold the shutdown
            assert list(watch.iter_lines()) == []  # the stream ended cleanly (reading it does not hang)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
