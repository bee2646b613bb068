"""Background processes that outlive the CLI: started in their own session, logged to a file, ended by PID.

A recorded PID is only signalled while the kernel's start time of that PID (/proc/PID/stat field 22) is still the
one recorded at spawn, so a PID reused by an unrelated process is never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass


@dataclass
class ManagedProcess:
    name: str
    pid: int
    argv: list[str]
    log: str
    start_time: int  # /proc/PID/stat starttime when spawned (clock ticks since boot); identifies the process

    def alive(self) -> bool:
        stat = _stat(self.pid)
        # A zombie is gone for our purposes; a different start time means the PID was reused.
        return stat is not None and stat[0] != "Z" and int(stat[19]) == self.start_time

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL."""
        if not self.alive():
            return
        _signal(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return
            time.sleep(0.05)
        _signal(self.pid, signal.SIGKILL)
        for _ in range(100):
            if not self.alive():
                return
            time.sleep(0.05)


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat fields after the command name: [state, ppid, …]; index 19 is starttime."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def adopt(name: str, pid: int, argv: list[str], log: str) -> ManagedProcess:
    """Record a process started elsewhere (e.g. containerd by aiokube.node) so `down` can stop it."""
    stat = _stat(pid)
    return ManagedProcess(name=name, pid=pid, argv=argv, log=log, start_time=int(stat[19]) if stat else -1)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    # Reap it if it is our own child (when the CLI runs in-process, e.g. tests), so alive() sees it gone.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def spawn(name: str, argv: list[str], log_path: str, *, env: dict[str, str] | None = None,
          cwd: str | None = None) -> ManagedProcess:
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env=env, cwd=cwd)
    return adopt(name, process.pid, argv, log_path)
