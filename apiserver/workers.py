"""Several API-server processes on one port (`python -m apiserver --workers N`).

One Python process serves requests on one core. With `--workers N` the parent forks N workers that each run a
whole API server listening on the same port with SO_REUSEPORT, and supervises them. The kernel spreads new
connections over the workers evenly (by a hash of the connection's addresses); one shared listening socket
would not: the worker that accepts first takes a whole burst of connections.

Each worker is an API server of its own on the shared etcd, exactly as the servers of an HA control plane are:
reads go to etcd, each keeps its own watch cache (a watch from a resourceVersion another worker returned waits
for that revision), and every write is a compare-and-swap, so workers never need to coordinate. Only worker 0
runs the background duties that one server per address is enough for (etcd compaction and the endpoint lease
of the `kubernetes` Service).

Metrics are shared: workers record into files under a private directory (prometheus_client's multiprocess
mode), and `/metrics` on any worker renders the sum of all of them. The directory is named by the supervisor's
pid (`metrics_directory`); a supervisor removes it when it ends, and on start removes those of supervisors that
died without doing so (SIGKILL).

Supervision:
- SIGTERM or SIGINT to the parent is passed to every worker, which shuts down gracefully; the parent exits
  when all have.
- A worker whose first start fails (it exits before it said it is serving: a certificate it cannot read, etcd
  refusing it) fails the server: the parent stops the others and exits with that status, as a single server
  would.
- A worker that ends after it was serving is replaced, after `RESTART_DELAY` seconds; a replacement that
  cannot start (etcd down for a while) is retried, the delay doubling up to `RESTART_DELAY_CAP`, while the
  other workers go on serving.
- Workers receive SIGTERM if the parent dies, so a killed supervisor leaves no server behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0  # seconds before a worker that ended after serving is replaced
RESTART_DELAY_CAP = 30.0  # seconds: the longest wait between failing starts of a replacement
_PR_SET_PDEATHSIG = 1  # prctl(2) option: the signal a process gets when its parent dies

_METRICS_PREFIX = "aiokube-apiserver-metrics-"
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}

WorkerMain = Callable[[int, Callable[[], None]], None]
"""Runs worker number `index` until it is told to stop, calling the second argument once it is serving."""


def shared_listening_socket(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A TCP socket listening on host:port beside the other workers' (SO_REUSEPORT, and SO_REUSEADDR as
    uvicorn binds). Only processes of the same user can join the group."""
    return socket.create_server((host, port), family=_family(host), backlog=backlog, reuse_port=True)


def check_port_free(host: str, port: int) -> None:
    """Raise OSError (EADDRINUSE) if anything listens on host:port, even a group of SO_REUSEPORT sockets:
    two servers started on one port must fail as a single server does, not share it."""
    socket.create_server((host, port), family=_family(host)).close()


def metrics_directory(supervisor_pid: int) -> str:
    """Where the workers of the supervisor with this pid share their metrics."""
    return os.path.join(tempfile.gettempdir(), f"{_METRICS_PREFIX}{supervisor_pid}")


def _remove_orphaned_metrics() -> None:
    """Metrics directories of supervisors that are gone (killed before they could remove theirs)."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        pid = name[len(_METRICS_PREFIX):]
        if name.startswith(_METRICS_PREFIX) and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class WorkerSupervisor:
    """Forks `count` workers running `worker_main` and keeps them running (see the module doc)."""

    def __init__(self, count: int, worker_main: WorkerMain) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self._count = count
        self._worker_main = worker_main
        self._workers: dict[int, tuple[int, int]] = {}  # pid -> (index, read end of its "serving" pipe)
        self._stopping = False
        self._metrics_dir = ""
        self._served: set[int] = set()  # indexes whose worker has been serving at least once
        self._failed_starts: dict[int, int] = {}  # index -> replacements in a row that did not start

    def run(self) -> int:
        """Serve until told to stop; returns the exit status for the parent process."""
        _remove_orphaned_metrics()
        self._metrics_dir = metrics_directory(os.getpid())
        shutil.rmtree(self._metrics_dir, ignore_errors=True)  # left by an earlier process with this pid
        os.mkdir(self._metrics_dir, 0o700)
        previous = {sig: signal.signal(sig, self._on_stop_signal) for sig in _STOP_SIGNALS}
        status = 0
        try:
            for index in range(self._count):
                self._spawn(index)
            log.info("API server: %d workers (pids %s)", self._count, ", ".join(map(str, self._workers)))
            while self._workers:
                pid, wait_status = os.wait()
                entry = self._workers.pop(pid, None)
                if entry is None:
                    continue
                index, serving_pipe = entry
                code = os.waitstatus_to_exitcode(wait_status)
                was_serving = _said_serving(serving_pipe)
                self._forget_metrics(pid)
                if self._stopping:
                    continue
                if was_serving:
                    self._served.add(index)
                    self._failed_starts.pop(index, None)
                elif index not in self._served:
                    log.error("API server worker %d (pid %d) failed to start (exit %s); stopping", index, pid, code)
                    status = code if code > 0 else 1
                    self._stop_workers()
                    continue
                else:
                    self._failed_starts[index] = self._failed_starts.get(index, 0) + 1
                delay = min(RESTART_DELAY * 2 ** self._failed_starts.get(index, 0), RESTART_DELAY_CAP)
                log.warning("API server worker %d (pid %d) ended (exit %s); starting another in %.0f s", index, pid,
                            code, delay)
                self._sleep_unless_stopping(delay)
                if not self._stopping:
                    self._spawn(index)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop_workers()
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
        return status

    def _sleep_unless_stopping(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_workers()

    def _stop_workers(self) -> None:
        self._stopping = True
        for pid in list(self._workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _spawn(self, index: int) -> None:
        parent = os.getpid()
        serving_read, serving_write = os.pipe()
        # A stop signal must never reach a new worker's copy of the supervisor's handler (it would not end the
        # worker): the signals stay blocked across fork, and the worker unblocks them once it has reset them to
        # their default. The supervisor, for its part, registers the worker before it can handle a signal.
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            raise
        if pid:
            os.close(serving_write)
            self._workers[pid] = (index, serving_read)
            if self._stopping:  # a stop that came while this worker was being started
                os.kill(pid, signal.SIGTERM)
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            return
        os.close(serving_read)
        # The worker. It must not return into the parent's code: it leaves through os._exit.
        code = 1
        try:
            for sig in _STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            _die_with_parent(parent)
            from apiserver.metrics import share_between_processes

            share_between_processes(self._metrics_dir)
            self._worker_main(index, lambda: _say_serving(serving_write))
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            log.exception("API server worker %d failed", index)
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _forget_metrics(self, pid: int) -> None:
        """A dead worker's gauges (open watches) no longer count; its counters and histograms still do."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self._metrics_dir)


def _say_serving(pipe: int) -> None:
    os.write(pipe, b"s")
    os.close(pipe)


def _said_serving(pipe: int) -> bool:
    """Whether the (now ended) worker wrote to its pipe; closes the parent's end."""
    try:
        return os.read(pipe, 1) == b"s"
    finally:
        os.close(pipe)


def _die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
