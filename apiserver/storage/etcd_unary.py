"""Unary etcd RPCs called straight on grpc.aio's channel core, without the per-call objects of its stubs.

A grpc.aio stub call builds a UnaryUnaryCall, starts a second asyncio Task to run it, registers the call in
a WeakSet and chains done-callbacks; for a small etcd request that machinery costs more of the event loop than
the gRPC call itself (bench/README.md: about 10 µs of a create's ~40 µs etcd call). `UnaryRpc` starts the
call on the channel's Cython core directly and awaits it in the caller's own task, with the same semantics:
a deadline `within` seconds, `wait_for_ready`, a failed status raised as `grpc.aio.AioRpcError` (so
etcd_errors.translate reads it as before), and a cancelled caller cancelling the RPC.

The core is a private attribute of grpc.aio's Channel (`_channel`, a `cygrpc.AioChannel`). It is used only
in the form of the grpcio releases that register methods on asyncio channels (`get_registered_call_handle`,
and `call` taking the handle); with any other, `UnaryRpc` calls the public stub instead (`UnaryRpc.direct`
says which path is in use). What the direct path leaves out: channel interceptors and gRPC's observability
(census) plugins, neither of which this project configures, and the channel's cancelling of its calls in
flight when it closes (the API server closes etcd only after its requests have ended). A call made once the
channel is closing fails as UNAVAILABLE (a 503), not with grpc's UsageError.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import grpc
from grpc.aio import AioRpcError, Metadata

_LOCAL_CANCELLATION = "Locally cancelled by application!"  # the details grpc.aio gives its own cancellations


class _Message(Protocol):
    def SerializeToString(self) -> bytes: ...


Request = TypeVar("Request", bound=_Message)
Response = TypeVar("Response")


class UnaryRpc(Generic[Request, Response]):
    """One unary method of a grpc.aio channel, e.g. `UnaryRpc(channel, "/etcdserverpb.KV/Txn", TxnResponse)`."""

    def __init__(self, channel: grpc.aio.Channel, method: str, response_type: Any) -> None:
        self._method = method.encode()
        self._parse: Callable[[bytes], Response] = response_type.FromString
        self._stub = channel.unary_unary(method, request_serializer=_serialize,
                                         response_deserializer=response_type.FromString)
        core: Any = getattr(channel, "_channel", None)
        usable = all(callable(getattr(core, name, None)) for name in ("get_registered_call_handle", "call", "closed"))
        self._core: Any = core if usable else None
        self._handle: int = core.get_registered_call_handle(self._method) if usable else 0

    @property
    def direct(self) -> bool:
        """True when calls go straight to the channel's core (the fast path), False through the stub."""
        return self._core is not None

    async def __call__(self, request: Request, *, within: float, wait_for_ready: bool = True) -> Response:
        """The response, or AioRpcError once `within` seconds have passed or the call failed."""
        if self._core is None:
            response: Response = await self._stub(request, timeout=within, wait_for_ready=wait_for_ready)
            return response
        # One yield first, as the stub's own task gave: the calls that requests reach in one loop iteration then
        # start back to back, and gRPC sends them to etcd in one write. Started inline, each between other
        # requests' work, they cost etcd ~35 % and gRPC's I/O threads ~60 % more CPU per call (bench_api_cpu).
        await asyncio.sleep(0)
        if self._core.closed():
            raise AioRpcError(grpc.StatusCode.UNAVAILABLE, Metadata(), Metadata(),
                              details="the channel to etcd is closed")
        call = self._core.call(self._method, time.time() + within, None, wait_for_ready, self._handle)
        try:
            data = await call.unary_unary(request.SerializeToString(), (), None)
        except asyncio.CancelledError:
            if not call.cancelled():
                call.cancel(_LOCAL_CANCELLATION)
            raise
        if call.is_ok():
            return self._parse(data)
        status = await call.status()
        raise AioRpcError(_STATUS_CODES.get(status.code(), grpc.StatusCode.UNKNOWN), Metadata(),
                          Metadata.from_tuple(status.trailing_metadata()), details=status.details(),
                          debug_error_string=status.debug_error_string())


def _serialize(message: _Message) -> bytes:
    return message.SerializeToString()


_STATUS_CODES = {member.value[0]: member for member in grpc.StatusCode}  # numeric code -> grpc.StatusCode
