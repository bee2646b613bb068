"""Fixtures shared by every test: a private etcd per test session, a unique key prefix per test."""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import Iterator

import pytest

from tests.support.etcd import EtcdProcess, start_etcd
from tests.support.processes import processes_mentioning


@pytest.fixture(scope="session")
def etcd() -> Iterator[EtcdProcess]:
    process = start_etcd()
    try:
        yield process
    finally:
        process.stop()
        shutil.rmtree(process.data_dir, ignore_errors=True)


@pytest.fixture
def etcd_url(etcd: EtcdProcess) -> str:
    return etcd.url


@pytest.fixture
def etcd_prefix() -> str:
    """A key prefix no other test uses, so tests share one etcd without seeing each other's keys."""
    return f"/test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session", autouse=True)
def no_leaked_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every process a test starts lives under this session's temp dir; any still running at the end is a leak:
    end it (it is ours: its command line names our temp dir) and fail loudly so the leak gets fixed."""
    base = str(tmp_path_factory.getbasetemp())
    yield
    leaked = processes_mentioning(base)
    for pid, _ in leaked:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leaked, "processes left running by tests:\n" + "\n".join(f"{p}: {c[:200]}" for p, c in leaked)
