"""WorkerSupervisor's rules (apiserver/workers.py) with stand-in workers: real forked processes that follow a
script instead of serving."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from apiserver import workers
from apiserver.workers import WorkerSupervisor


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "RESTART_DELAY", 0.05)


def _attempts(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _scripted(log: Path, script: list[str]) -> Callable[[int, Callable[[], None]], None]:
    """Worker 0 plays `script` one step per start: "serve-then-crash", "fail-to-start" or "serve" (until
    SIGTERM); every start appends its step to `log`. Other workers serve until SIGTERM."""

    def worker_main(index: int, serving: Callable[[], None]) -> None:
        step = script[min(len(_attempts(log)), len(script) - 1)] if index == 0 else "serve"
        if index == 0:
            with log.open("a") as f:
                f.write(step + "\n")
        if step == "fail-to-start":
            raise SystemExit(4)
        serving()
        if step == "serve-then-crash":
            time.sleep(0.1)
            os._exit(1)
        signal.pause()  # until the supervisor's SIGTERM (default action: end the process)

    return worker_main


def _stop_self_when(condition: Callable[[], bool], timeout: float = 20.0) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)  # run()'s handler stops the workers

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_first_start_that_fails_stops_the_server_with_its_status(tmp_path: Path) -> None:
    log = tmp_path / "attempts"
    started = time.monotonic()
    status = WorkerSupervisor(2, _scripted(log, ["fail-to-start"])).run()
    assert status == 4
    assert _attempts(log) == ["fail-to-start"]
    assert time.monotonic() - started < 10


def test_a_worker_that_ended_after_serving_is_replaced_and_failed_replacements_are_retried(
        tmp_path: Path) -> None:
    log = tmp_path / "attempts"
    script = ["serve-then-crash", "fail-to-start", "fail-to-start", "serve"]
    _stop_self_when(lambda: len(_attempts(log)) >= 4)
    status = WorkerSupervisor(2, _scripted(log, script)).run()
    # The failed replacements did not fail the server: it went on to start the one that serves, and ended
    # cleanly on SIGTERM.
    assert _attempts(log) == script
    assert status == 0
