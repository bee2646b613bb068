"""Fixtures shared by every test: a private etcd per test session, a unique key prefix per test."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest

from tests.support.etcd import EtcdProcess, start_etcd


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
