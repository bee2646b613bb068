"""UnaryRpc (apiserver/storage/etcd_unary.py) against a real etcd: the direct path and the stub fallback answer
alike, failures arrive as grpc.aio.AioRpcError with etcd's status, deadlines hold, and a cancelled caller
cancels its RPC."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aetcd import rpc

from apiserver.storage.etcd import EtcdStorage, _compare_and_put
from apiserver.storage.etcd_errors import translate
from apiserver.storage.etcd_unary import UnaryRpc
from apiserver.storage.interface import StorageError, StorageUnavailableError
from tests.support.etcd import free_port

pytestmark = pytest.mark.etcd


class _StubOnly:
    """A channel as a grpcio without the private core would offer it: only the public stub factory."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.unary_unary = channel.unary_unary


@pytest.fixture
async def channel(etcd_url: str) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(etcd_url.removeprefix("http://")) as opened:
        yield opened


@pytest.mark.parametrize("path", ["direct", "stub"])
async def test_txn_and_range_answer_on_either_path(channel: grpc.aio.Channel, etcd_prefix: str, path: str) -> None:
    source: Any = channel if path == "direct" else _StubOnly(channel)
    txn = UnaryRpc(source, "/etcdserverpb.KV/Txn", rpc.TxnResponse)
    ranged = UnaryRpc(source, "/etcdserverpb.KV/Range", rpc.RangeResponse)
    assert txn.direct is (path == "direct")
    key = f"{etcd_prefix}/{path}".encode()
    created = await txn(_compare_and_put(key, 0, b"v1"), within=5)
    assert created.succeeded and created.header.revision > 0
    again = await txn(_compare_and_put(key, 0, b"v2"), within=5)
    assert not again.succeeded  # the compare failed: the key exists
    got = await ranged(rpc.RangeRequest(key=key), within=5)
    assert [(kv.value, kv.mod_revision) for kv in got.kvs] == [(b"v1", created.header.revision)]


@pytest.mark.parametrize("path", ["direct", "stub"])
async def test_failed_status_is_an_aio_rpc_error(channel: grpc.aio.Channel, path: str) -> None:
    source: Any = channel if path == "direct" else _StubOnly(channel)
    txn = UnaryRpc(source, "/etcdserverpb.KV/Txn", rpc.TxnResponse)
    request = rpc.TxnRequest()
    request.success.add().request_put.key = b""  # etcd refuses a put without a key
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await txn(request, within=5)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "key is not provided" in (failed.value.details() or "")
    translated = translate(failed.value)
    assert type(translated) is StorageError and "INVALID_ARGUMENT" in str(translated)


class _RecordingCore:
    """The channel's core, recording the calls it starts and whether each was cancelled."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self.calls: list[Any] = []

    def call(self, *args: Any) -> Any:
        started = self._core.call(*args)
        self.calls.append(started)
        return started

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)


async def test_deadline_and_cancellation_against_an_absent_server() -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}") as nowhere:
        ranged = UnaryRpc(nowhere, "/etcdserverpb.KV/Range", rpc.RangeResponse)
        assert ranged.direct
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await ranged(rpc.RangeRequest(key=b"a"), within=0.3)
        assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0.25 <= time.monotonic() - started < 3
        assert isinstance(translate(failed.value), StorageUnavailableError)

        recording = _RecordingCore(ranged._core)
        ranged._core = recording
        waiting = asyncio.ensure_future(ranged(rpc.RangeRequest(key=b"a"), within=30))
        await asyncio.sleep(0.2)
        assert len(recording.calls) == 1 and not recording.calls[0].cancelled()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 2)  # the cancellation ends the call at once, not after 30 s
        assert recording.calls[0].cancelled()  # the RPC itself was cancelled, not only the awaiting task


async def test_a_call_on_a_closed_channel_is_unavailable(etcd_url: str) -> None:
    channel = grpc.aio.insecure_channel(etcd_url.removeprefix("http://"))
    ranged = UnaryRpc(channel, "/etcdserverpb.KV/Range", rpc.RangeResponse)
    assert (await ranged(rpc.RangeRequest(key=b"a"), within=5)).header.revision > 0
    await channel.close()
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await ranged(rpc.RangeRequest(key=b"a"), within=5)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert isinstance(translate(failed.value), StorageUnavailableError)  # a 503 for the request, not a 500


class _CoreWithoutRegisteredMethods:
    """A channel core as grpcio releases before registered methods on asyncio channels had it: `call` takes
    four arguments and there is no `get_registered_call_handle`."""

    def call(self, method: bytes, deadline: float | None, credentials: Any, wait_for_ready: bool) -> Any:
        raise AssertionError("UnaryRpc must not call a core of this form")

    def closed(self) -> bool:
        return False


async def test_a_core_of_another_form_is_left_to_the_stub(channel: grpc.aio.Channel, etcd_prefix: str) -> None:
    older: Any = _StubOnly(channel)
    older._channel = _CoreWithoutRegisteredMethods()
    txn = UnaryRpc(older, "/etcdserverpb.KV/Txn", rpc.TxnResponse)
    assert not txn.direct
    assert (await txn(_compare_and_put(f"{etcd_prefix}/older".encode(), 0, b"v"), within=5)).succeeded


async def test_storage_uses_the_direct_path(storage: EtcdStorage) -> None:
    """EtcdStorage's calls take the fast path with the grpcio this project installs; a grpcio release
    without grpc.aio's channel core would still work (through the stub), but fail here to say so."""
    assert storage._txn_rpc is not None and storage._txn_rpc.direct
    assert storage._range_rpc is not None and storage._range_rpc.direct
