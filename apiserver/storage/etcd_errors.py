"""Translate etcd's gRPC failures into the storage exceptions of interface.py, and retry reads.

etcd reports problems as gRPC status codes plus a message:
  UNAVAILABLE / DEADLINE_EXCEEDED / CANCELLED-by-transport  -> StorageUnavailableError
  OUT_OF_RANGE "required revision has been compacted"        -> CompactedError
Anything else is a bug on our side (bad request) and surfaces as a plain StorageError.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from apiserver.storage.interface import CompactedError, StorageError, StorageUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Codes meaning "the server could not be reached or did not answer in time": worth retrying a read.
TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

# Short and few: a read that fails three times within ~0.5 s means etcd is really away, and the caller
# (an HTTP request, a controller) has its own, longer retry loop.
READ_RETRY_BACKOFFS = (0.1, 0.3)

COMPACTED_MARKER = "required revision has been compacted"


def is_transient(error: grpc.aio.AioRpcError) -> bool:
    return error.code() in TRANSIENT_CODES


def translate(error: grpc.aio.AioRpcError, *, compact_revision: int = 0) -> StorageError:
    """The storage exception for a failed etcd RPC."""
    details = error.details() or ""
    if COMPACTED_MARKER in details:
        return CompactedError(f"etcd: {details}", compact_revision)
    if is_transient(error):
        return StorageUnavailableError(f"etcd unavailable: {error.code().name}: {details}")
    return StorageError(f"etcd error: {error.code().name}: {details}")


async def retry_read(call: Callable[[float], Awaitable[T]], *, what: str, budget: float) -> T:
    """Run an idempotent etcd call (given its timeout), retrying transient failures within `budget` seconds.

    The calls wait for the channel to be ready, so the retries matter for failures mid-flight (etcd restarted
    under a request); the shared budget keeps a request against a dead etcd to `budget`, not a multiple.
    Only reads go through here: a write that fails mid-flight may or may not have committed, so retrying it
    could turn a successful create into a spurious AlreadyExists.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    for backoff in (*READ_RETRY_BACKOFFS, None):
        try:
            return await call(max(deadline - loop.time(), 0.001))
        except grpc.aio.AioRpcError as error:
            if backoff is None or loop.time() + backoff >= deadline or not is_transient(error):
                raise translate(error) from error
            log.debug("etcd %s failed (%s), retrying in %.1fs", what, error.code().name, backoff)
            await asyncio.sleep(backoff)
    raise AssertionError("unreachable")  # the loop either returns or raises
