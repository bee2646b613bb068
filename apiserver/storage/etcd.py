"""EtcdStorage: the Storage protocol (interface.py) on etcd v3 through the asyncio client aetcd.

Every write is one etcd transaction guarded by a revision comparison, so optimistic concurrency is
decided by etcd itself:
    create  compare(mod_revision == 0)         then put        else KeyExistsError
    update  compare(mod_revision == expected)  then put        else ConflictError(current) / KeyNotFoundError
    delete  compare(mod_revision == expected)  then delete(prev_kv) (or compare(version > 0) without a
            precondition)                                     else ConflictError(current) / KeyNotFoundError
`list` uses the raw Range RPC (aetcd's helpers have no limit/revision) with `limit + 1` so `more` is exact,
and a second count-only Range at the same revision for `remaining`. Range and Txn are called through
etcd_unary.UnaryRpc on aetcd's channel (a leaner path than the generated stubs); watches and Compact through
the stubs.

Connection handling: the gRPC channel reconnects by itself (backoff capped at 1 s). Unary calls wait for the
channel to be ready (`wait_for_ready`) for at most `request_timeout`; reads failing mid-flight are retried
within that same budget, writes are not (a write that broke mid-flight may have committed). Usage:

    storage = EtcdStorage(["http://127.0.0.1:2379"])
    await storage.connect()      # inside the running loop: gRPC objects belong to one loop
    ...
    await storage.close()

https members (kube-apiserver's --etcd-cafile/--etcd-certfile/--etcd-keyfile): `EtcdStorage(["https://…"],
tls=ClientTlsFiles(ca, cert, key))` connects through apiserver/storage/etcd_tls.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit

import aetcd
import grpc
from aetcd import rpc, utils

from apiserver.storage.etcd_errors import retry_read, translate
from apiserver.storage.etcd_tls import ClientTlsFiles, SecureClient
from apiserver.storage.etcd_unary import Request, Response, UnaryRpc
from apiserver.storage.etcd_watch import probe_compact_revision, watch_range
from apiserver.storage.interface import (
    CompactedError,
    ConflictError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    StorageError,
    StorageUnavailableError,
    WatchEvent,
)

log = logging.getLogger(__name__)

_CHANNEL_OPTIONS = {
    # Reconnect quickly after an etcd restart instead of gRPC's default backoff of up to 120 s.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    # Notice a silently dead peer (no RST) within ~15 s; etcd accepts pings every >= 5 s.
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.keepalive_permit_without_calls": 1,
    # A watch catching up over many revisions can receive large batches.
    "grpc.max_receive_message_length": 2**31 - 1,
    "grpc.max_send_message_length": 2**31 - 1,
}


_NOT_CONNECTED = "EtcdStorage is not connected: call `await storage.connect()` first"


def grpc_target(endpoints: Sequence[str], *, secure: bool = False) -> tuple[str, int]:
    """(host, port) for aetcd, which builds the gRPC target as f"{host}:{port}".

    Several IP endpoints become one `ipv4:` target listing them all, so gRPC fails over between them
    (pick_first); otherwise the first endpoint is used. Every endpoint is https:// when `secure` (TLS client
    files are given), http:// otherwise: one channel speaks one of them.
    """
    if not endpoints:
        raise ValueError("at least one etcd endpoint is required")
    scheme = "https" if secure else "http"
    parsed = [urlsplit(e if "://" in e else f"{scheme}://{e}") for e in endpoints]
    for url in parsed:
        if url.scheme != scheme:
            raise ValueError(f"unsupported etcd endpoint {url.geturl()!r}: "
                             + ("with --etcd-cafile/--etcd-certfile/--etcd-keyfile every endpoint is https://"
                                if secure else "https:// needs --etcd-cafile, --etcd-certfile and --etcd-keyfile"))
    addresses = [(url.hostname or "127.0.0.1", url.port or 2379) for url in parsed]
    if len(addresses) > 1 and all(host.replace(".", "").isdigit() for host, _ in addresses):
        listed = ",".join(f"{host}:{port}" for host, port in addresses)
        head, _, last_port = listed.rpartition(":")
        return f"ipv4:{head}", int(last_port)
    return addresses[0]


def _key_value(kv: rpc.KeyValue) -> KeyValue:
    return KeyValue(key=kv.key.decode(), value=kv.value, mod_revision=kv.mod_revision,
                    create_revision=kv.create_revision)


def _compare_mod(key: bytes, revision: int) -> rpc.Compare:
    return rpc.Compare(key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=revision)


def _compare_and_put(key: bytes, revision: int, value: bytes) -> rpc.TxnRequest:
    """compare(mod_revision == revision) then put. Built in place: constructing the Compare and the PutRequest
    as messages of their own and passing them in copies each (the value included) once more, half the cost."""
    request = rpc.TxnRequest()
    compare = request.compare.add()
    compare.key, compare.target, compare.result, compare.mod_revision = key, rpc.Compare.MOD, rpc.Compare.EQUAL, \
        revision
    put = request.success.add().request_put
    put.key, put.value = key, value
    return request


def _get(key: bytes) -> rpc.RequestOp:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))


class EtcdStorage:
    """Storage on etcd. See the module docstring for the transaction of each verb."""

    def __init__(self, endpoints: Sequence[str], *, request_timeout: float = 5.0,
                 watch_reconnect_timeout: float = 60.0, tls: ClientTlsFiles | None = None) -> None:
        self._host, self._port = grpc_target(endpoints, secure=tls is not None)
        self._tls = tls
        self._endpoints = list(endpoints)
        self._request_timeout = request_timeout
        self._watch_reconnect_timeout = watch_reconnect_timeout
        self._client: aetcd.Client | None = None
        self._txn_rpc: UnaryRpc[rpc.TxnRequest, rpc.TxnResponse] | None = None
        self._range_rpc: UnaryRpc[rpc.RangeRequest, rpc.RangeResponse] | None = None

    async def connect(self) -> None:
        if self._tls is not None:
            client: aetcd.Client = SecureClient(host=self._host, port=self._port, tls=self._tls,
                                                options=_CHANNEL_OPTIONS)
        else:
            client = aetcd.Client(host=self._host, port=self._port, timeout=None, options=_CHANNEL_OPTIONS)
        await client.connect()
        self._client = client
        self._txn_rpc = UnaryRpc(client.channel, "/etcdserverpb.KV/Txn", rpc.TxnResponse)
        self._range_rpc = UnaryRpc(client.channel, "/etcdserverpb.KV/Range", rpc.RangeResponse)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            self._txn_rpc = self._range_rpc = None
            await client.close()

    @property
    def _kv(self) -> rpc.KVStub:
        if self._client is None or self._client.kvstub is None:
            raise StorageUnavailableError(_NOT_CONNECTED)
        return self._client.kvstub

    @staticmethod
    def _rpc(unary: UnaryRpc[Request, Response] | None) -> UnaryRpc[Request, Response]:
        if unary is None:
            raise StorageUnavailableError(_NOT_CONNECTED)
        return unary

    def _watch_stub(self) -> rpc.WatchStub:
        if self._client is None or self._client.channel is None:
            raise StorageUnavailableError("EtcdStorage is closed")
        return rpc.WatchStub(self._client.channel)

    # -- reads -------------------------------------------------------------------------------------------

    async def _range(self, request: rpc.RangeRequest, what: str) -> rpc.RangeResponse:
        async def call(seconds: float) -> rpc.RangeResponse:
            return await self._rpc(self._range_rpc)(request, within=seconds)
        try:
            return await retry_read(call, what=what, budget=self._request_timeout)
        except CompactedError as error:
            # The Range error does not say up to where etcd compacted; clients resuming after a 410 want to.
            compacted = await probe_compact_revision(self._watch_stub(), within=self._request_timeout)
            raise CompactedError(str(error), compacted) from error

    async def get(self, key: str) -> KeyValue | None:
        response = await self._range(rpc.RangeRequest(key=key.encode()), "get")
        return _key_value(response.kvs[0]) if response.kvs else None

    async def list(self, prefix: str, *, limit: int = 0, start_after: str | None = None,
                   revision: int | None = None) -> ListResult:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        prefix_bytes = prefix.encode()
        range_end = utils.prefix_range_end(prefix_bytes)
        # The first key strictly after `start_after` is start_after + b"\0".
        start = start_after.encode() + b"\0" if start_after is not None else prefix_bytes
        if start < prefix_bytes:
            start = prefix_bytes
        request = rpc.RangeRequest(key=start, range_end=range_end, revision=revision or 0,
                                   limit=limit + 1 if limit else 0)
        response = await self._range(request, "list")
        at_revision = revision or response.header.revision
        kvs = list(response.kvs)
        more = bool(limit) and len(kvs) > limit
        items = [_key_value(kv) for kv in kvs[:limit or None]]
        remaining = 0
        if more:
            # `count` counts every key in [start, range_end) regardless of limit.
            remaining = response.count - len(items)
        return ListResult(items=items, revision=at_revision, more=more, remaining=remaining)

    async def current_revision(self) -> int:
        # A count-only range over an empty key range returns just the header with the store revision.
        request = rpc.RangeRequest(key=b"\0", count_only=True, limit=1)
        response = await self._range(request, "current_revision")
        return int(response.header.revision)

    # -- writes ------------------------------------------------------------------------------------------

    async def _txn(self, request: rpc.TxnRequest) -> rpc.TxnResponse:
        try:
            return await self._rpc(self._txn_rpc)(request, within=self._request_timeout)
        except grpc.aio.AioRpcError as error:
            raise translate(error) from error

    async def create(self, key: str, value: bytes) -> int:
        key_bytes = key.encode()
        response = await self._txn(_compare_and_put(key_bytes, 0, value))
        if not response.succeeded:
            raise KeyExistsError(f"key {key!r} already exists")
        return int(response.header.revision)

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> int:
        if expected_revision <= 0:
            raise ValueError("expected_revision must be a real mod_revision (> 0); use create for new keys")
        key_bytes = key.encode()
        request = _compare_and_put(key_bytes, expected_revision, value)
        request.failure.add().request_range.key = key_bytes
        response = await self._txn(request)
        if not response.succeeded:
            raise self._precondition_failure(key, expected_revision, response)
        return int(response.header.revision)

    async def delete(self, key: str, *, expected_revision: int | None = None) -> tuple[KeyValue, int]:
        key_bytes = key.encode()
        if expected_revision is None:
            # version > 0 means "exists"; without the compare a delete of a missing key would succeed silently.
            compare = rpc.Compare(key=key_bytes, target=rpc.Compare.VERSION, result=rpc.Compare.GREATER,
                                  version=0)
        else:
            compare = _compare_mod(key_bytes, expected_revision)
        delete = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key_bytes, prev_kv=True))
        response = await self._txn(rpc.TxnRequest(compare=[compare], success=[delete], failure=[_get(key_bytes)]))
        if not response.succeeded:
            raise self._precondition_failure(key, expected_revision, response)
        deleted = response.responses[0].response_delete_range
        if not deleted.prev_kvs:
            raise StorageError(f"etcd deleted {key!r} but returned no previous value")
        return _key_value(deleted.prev_kvs[0]), int(response.header.revision)

    @staticmethod
    def _precondition_failure(key: str, expected_revision: int | None,
                              response: rpc.TxnResponse) -> StorageError:
        current = response.responses[0].response_range.kvs if response.responses else []
        if not current:
            return KeyNotFoundError(f"key {key!r} not found")
        kv = _key_value(current[0])
        return ConflictError(
            f"key {key!r} is at revision {kv.mod_revision}, expected {expected_revision}", current=kv)

    # -- history -----------------------------------------------------------------------------------------

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        prefix_bytes = prefix.encode()
        return watch_range(self._watch_stub, prefix_bytes, utils.prefix_range_end(prefix_bytes),
                           start_revision=start_revision, reconnect_timeout=self._watch_reconnect_timeout)

    async def compact(self, revision: int) -> None:
        try:
            await self._kv.Compact(rpc.CompactionRequest(revision=revision, physical=False),
                                   timeout=self._request_timeout, wait_for_ready=True)
        except grpc.aio.AioRpcError as error:
            raise translate(error, compact_revision=revision) from error
