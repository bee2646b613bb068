"""Finding processes by what their command line mentions (leak checks of tests that start processes)."""

from __future__ import annotations

import os
import subprocess
import time

import httpx


def processes_mentioning(*markers: str) -> list[tuple[int, str]]:
    """(pid, command line) of every other process whose command line contains one of `markers`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in cmdline for m in markers):
            found.append((int(entry), cmdline.strip()))
    return found


def wait_until_ready(process: subprocess.Popen[bytes], url: str, what: str, timeout: float = 30.0) -> None:
    """Poll `url` (a /readyz) until it answers 200; fail if `process` exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, f"{what} did not become ready"
        time.sleep(0.1)


def terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM a process we started and reap it; SIGKILL it if it has not ended within `timeout` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
