"""One etcd watch on a key prefix as a self-resuming async iterator of WatchEvent.

Each watch gets its own gRPC bidirectional stream (on the shared channel), so a failure or a slow consumer
of one watch never disturbs another, and cancelling is simply "send WatchCancelRequest, then cancel the
call". aetcd's callback watcher multiplexes every watch on one stream and tears all of them down together
on any error, which is why this module speaks the Watch RPC directly.

Resuming: when the stream breaks (etcd restarted, connection reset) the watch is re-created from the last
*delivered event's* mod_revision + 1, never from a response header revision (headers may run ahead of what
was delivered; resuming from one silently drops events). etcd never splits one revision across responses
(without `fragment`), so every event of the last delivered revision was already yielded.

Errors: a compacted start revision raises CompactedError; a connection that stays broken longer than
`reconnect_timeout` raises StorageUnavailableError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import grpc
from aetcd import rpc

from apiserver.storage.etcd_errors import is_transient, translate
from apiserver.storage.interface import CompactedError, StorageUnavailableError, WatchEvent

log = logging.getLogger(__name__)

# Reconnect backoff: start small (an etcd restart on the same host takes ~0.5 s), cap low so a watch resumes
# within a second of etcd coming back.
RECONNECT_BACKOFF_START = 0.05
RECONNECT_BACKOFF_CAP = 1.0
# How long a cancel request may take before the stream is simply dropped.
CANCEL_TIMEOUT = 1.0


class _StreamEnded(Exception):
    """The server closed the watch stream without an error status: treated like a lost connection."""


def _event_from_proto(event: rpc.Event) -> WatchEvent:
    is_delete = event.type == rpc.Event.DELETE
    prev_value = event.prev_kv.value if event.HasField("prev_kv") else None
    return WatchEvent(
        type="DELETE" if is_delete else "PUT",
        key=event.kv.key.decode(),
        value=None if is_delete else event.kv.value,
        prev_value=prev_value,
        revision=event.kv.mod_revision,
        create_revision=event.kv.create_revision,
    )


def _create_request(key: bytes, range_end: bytes, start_revision: int) -> rpc.WatchRequest:
    return rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
        key=key, range_end=range_end, start_revision=start_revision, prev_kv=True))


async def watch_range(
    stub: Callable[[], rpc.WatchStub],
    key: bytes,
    range_end: bytes,
    *,
    start_revision: int,
    reconnect_timeout: float,
    metadata: tuple[tuple[str, str], ...] | None = None,
) -> AsyncIterator[WatchEvent]:
    """Every change in [key, range_end) from `start_revision` on, resuming across connection losses.

    `stub` is called for every (re)connection so that the owner may have replaced its channel meanwhile.
    """
    next_revision = start_revision
    broken_since: float | None = None
    backoff = RECONNECT_BACKOFF_START
    while True:
        call = stub().Watch(metadata=metadata)
        watch_id: int | None = None
        try:
            await call.write(_create_request(key, range_end, next_revision))
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    raise _StreamEnded()
                if response.compact_revision:
                    raise CompactedError(
                        f"watch from revision {next_revision}: etcd compacted up to {response.compact_revision}",
                        response.compact_revision)
                if response.created:
                    watch_id = response.watch_id
                    broken_since, backoff = None, RECONNECT_BACKOFF_START
                if response.canceled:
                    # Besides compaction (above), etcd cancels a watch when it lost its leader (transient:
                    # resume like after a broken stream) or for a bad request (permanent).
                    if "no leader" in response.cancel_reason:
                        raise _StreamEnded(response.cancel_reason)
                    raise _cancelled_by_server(response.cancel_reason)
                for event in response.events:
                    watch_event = _event_from_proto(event)
                    next_revision = watch_event.revision + 1
                    yield watch_event
        except (grpc.aio.AioRpcError, _StreamEnded) as error:
            if isinstance(error, grpc.aio.AioRpcError) and not _is_reconnectable(error):
                raise translate(error) from error
            now = time.monotonic()
            broken_since = broken_since if broken_since is not None else now
            if now - broken_since > reconnect_timeout:
                raise StorageUnavailableError(
                    f"etcd watch could not be resumed for {reconnect_timeout:.0f}s: {error}") from error
            log.info("etcd watch on %r lost (%s); resuming from revision %d in %.2fs",
                     key, _describe(error), next_revision, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_BACKOFF_CAP)
        finally:
            await _cancel(call, watch_id)


def _cancelled_by_server(reason: str) -> Exception:
    return StorageUnavailableError(f"etcd canceled the watch: {reason or 'no reason given'}")


def _is_reconnectable(error: grpc.aio.AioRpcError) -> bool:
    # A reset HTTP/2 stream on an etcd shutdown may surface as INTERNAL or CANCELLED instead of UNAVAILABLE.
    return is_transient(error) or error.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED,
                                                   grpc.StatusCode.UNKNOWN)


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return type(error).__name__


async def _cancel(call: grpc.aio.StreamStreamCall, watch_id: int | None) -> None:
    """Release the server-side watcher: an abandoned one would keep sending events into the void."""
    if call.done():
        return
    if watch_id is not None:
        with contextlib.suppress(Exception):
            cancel = rpc.WatchRequest(cancel_request=rpc.WatchCancelRequest(watch_id=watch_id))
            await asyncio.wait_for(call.write(cancel), CANCEL_TIMEOUT)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(call.done_writing(), CANCEL_TIMEOUT)
    call.cancel()


async def probe_compact_revision(stub: rpc.WatchStub, *, within: float) -> int:
    """etcd's current compaction revision, or 0 if it cannot be learnt `within` seconds.

    etcd has no RPC for it, but a watch created at revision 1 is answered with `compact_revision` as soon as
    any compaction happened. Used only after a read failed with "compacted", so that the 410 can say from
    where clients may resume.
    """
    call = stub.Watch()
    try:
        async with asyncio.timeout(within):
            await call.write(_create_request(b"\0", b"", 1))
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    return 0
                if response.compact_revision:
                    return int(response.compact_revision)
                if response.canceled:
                    return 0
    except (TimeoutError, grpc.aio.AioRpcError):
        return 0
    finally:
        call.cancel()
