"""Background processes that outlive the CLI: started in their own session, logged to a file, ended by PID.

A recorded PID is only signalled while /proc/PID/cmdline still matches what was started, so a PID reused by an
unrelated process after a reboot is never touched.
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

    def alive(self) -> bool:
        try:
            with open(f"/proc/{self.pid}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
        except OSError:
            return False
        # A zombie has an empty cmdline: it is gone for our purposes.
        return bool(cmdline) and cmdline[0].decode(errors="replace") == self.argv[0] and _not_zombie(self.pid)

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


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


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
    return ManagedProcess(name=name, pid=process.pid, argv=argv, log=log_path)
