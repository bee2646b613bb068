"""A lean keep-alive HTTP/1.1 transport for the scheduler's short writes (bindings, status patches, events).

Why: httpcore 1.0's connection pool re-examines every connection (and polls every idle socket) for every
request it assigns, work that grows with the square of the open connections; at hundreds of writes per second
that costs the scheduler more CPU than scheduling. This transport keeps a plain stack of idle connections per
origin and parses with h11 (the same parser httpcore uses). It buffers whole responses, so it is only for
request/response calls — watches keep httpx's default transport — and only for plain http:// servers (for
https the scheduler falls back to the default transport).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import h11
import httpx

READ_CHUNK = 65536
REQUEST_TIMEOUT = 60.0


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = field(default=False)

    def close(self) -> None:
        self.writer.close()


class KeepAliveTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_idle_per_origin: int = 32) -> None:
        self.max_idle = max_idle_per_origin
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def _connect(self, origin: tuple[str, int]) -> _Connection:
        reader, writer = await asyncio.open_connection(*origin, limit=READ_CHUNK * 4)
        return _Connection(reader, writer)

    def _checkout(self, origin: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.writer.is_closing() and not conn.reader.at_eof():
                conn.reused = True
                return conn
            conn.close()
        return None

    def _checkin(self, origin: tuple[str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) < self.max_idle:
            idle.append(conn)
        else:
            conn.close()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol("KeepAliveTransport serves plain http:// only")
        origin = (request.url.host, request.url.port or 80)
        body = await request.aread()
        conn = self._checkout(origin)
        if conn is not None:
            try:
                return await self._exchange(origin, conn, request, body)
            except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError):
                # The server closed an idle keep-alive connection under us: retry once on a fresh one.
                conn.close()
        return await self._exchange(origin, await self._connect(origin), request, body)

    async def _exchange(self, origin: tuple[str, int], conn: _Connection, request: httpx.Request,
                        body: bytes) -> httpx.Response:
        protocol = h11.Connection(h11.CLIENT)
        headers = list(request.headers.raw)
        out = protocol.send(h11.Request(method=request.method, target=request.url.raw_path, headers=headers))
        if body:
            out += protocol.send(h11.Data(data=body))
        out += protocol.send(h11.EndOfMessage())
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                conn.writer.write(out)
                await conn.writer.drain()
                status = 0
                response_headers: list[tuple[bytes, bytes]] = []
                chunks: list[bytes] = []
                while True:
                    event = protocol.next_event()
                    if event is h11.NEED_DATA:
                        data = await conn.reader.read(READ_CHUNK)
                        if not data and not conn.reused:
                            raise httpx.RemoteProtocolError("server closed the connection mid-response")
                        if not data:
                            raise ConnectionResetError("keep-alive connection closed")
                        protocol.receive_data(data)
                    elif isinstance(event, h11.Response):
                        status, response_headers = event.status_code, list(event.headers)
                    elif isinstance(event, h11.Data):
                        chunks.append(bytes(event.data))
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        raise ConnectionResetError("connection closed")
        except BaseException:
            conn.close()
            raise
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            self._checkin(origin, conn)
        else:
            conn.close()
        return httpx.Response(status, headers=response_headers, content=b"".join(chunks),
                              request=request)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
