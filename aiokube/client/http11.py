"""A lean keep-alive HTTP/1.1 connection pool for the REST client's request/response calls to plain http://.

Why not httpx for these: per request, httpx.AsyncClient re-parses and merges URLs, builds Request/Response
models, runs the cookie jar through urllib's machinery, and httpcore 1.0's pool re-examines every pooled
connection (polling idle sockets) on each assignment. At hundreds of writes per second (the scheduler's
bindings) that costs more CPU than the work itself. This pool keeps a stack of idle connections to one origin
and leaves all HTTP framing and parsing to h11 (the parser httpcore itself uses), so only connection reuse is
hand-written here. `send` buffers whole responses on pooled connections; `stream` (watches) takes a
connection of its own for as long as the stream lasts and hands the body over chunk by chunk.

Failures are raised as httpx's exception types so `retry.retryable_exception` treats both paths alike:
a connection that could not be opened is `ConnectError`/`ConnectTimeout` (nothing was sent), everything after
that is a `ReadError`, `RemoteProtocolError` or `ReadTimeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import h11
import httpx

READ_CHUNK = 65536
DEFAULT_MAX_IDLE = 32
# Like httpx's default pool limit: a burst of concurrent requests waits for a connection instead of opening
# hundreds of sockets at once (streams are not counted: a watch holds its connection for minutes).
DEFAULT_MAX_CONNECTIONS = 100


@dataclass(frozen=True)
class RawResponse:
    status_code: int
    headers: list[tuple[bytes, bytes]]
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    def to_httpx(self, method: str, url: str) -> httpx.Response:
        """The same answer as an httpx.Response (for error decoding and the raw escape hatch)."""
        return httpx.Response(self.status_code, headers=self.headers, content=self.content,
                              request=httpx.Request(method, url))


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False
        # One h11 state machine per connection, reset between requests (cheaper than a new one each time).
        self.protocol = h11.Connection(h11.CLIENT)

    @property
    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class StreamingResponse:
    """An answer whose body is read as it arrives; `close()` (always) drops its connection."""

    def __init__(self, conn: _Connection, protocol: h11.Connection, status_code: int,
                 headers: list[tuple[bytes, bytes]]) -> None:
        self._conn = conn
        self._protocol = protocol
        self.status_code = status_code
        self.headers = headers

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Body chunks until the end of the message; a broken stream raises httpx.ReadError/RemoteProtocolError."""
        while True:
            event = await _next_event(self._conn, self._protocol)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("connection closed mid-stream")

    async def read(self) -> RawResponse:
        return RawResponse(self.status_code, self.headers, b"".join([c async for c in self.iter_bytes()]))

    def close(self) -> None:
        self._conn.close()


async def _next_event(conn: _Connection, protocol: h11.Connection) -> object:
    """The next h11 event of a streamed answer, reading from the socket as needed (errors as httpx's)."""
    try:
        while True:
            event = protocol.next_event()
            if event is not h11.NEED_DATA:
                return event
            protocol.receive_data(await conn.reader.read(READ_CHUNK))
    except h11.RemoteProtocolError as exc:
        raise httpx.RemoteProtocolError(str(exc)) from exc
    except OSError as exc:
        raise httpx.ReadError(str(exc)) from exc


class _StaleConnection(Exception):
    """A kept-alive connection the server had already closed: nothing of the request was processed."""


class Http11Pool:
    def __init__(self, host: str, port: int, *, max_idle: int = DEFAULT_MAX_IDLE,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS, connect_timeout: float = 5.0,
                 request_timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self.connect_timeout = connect_timeout
        # From sending the request to the end of the answer (httpx's read timeout plays this role there).
        self.request_timeout = request_timeout
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._host_header = f"{host}:{port}".encode()

    @classmethod
    def for_url(cls, server: str, **kwargs: float | int) -> Http11Pool:
        url = httpx.URL(server)
        if url.scheme != "http":
            raise ValueError(f"Http11Pool serves plain http:// only, not {server!r}")
        return cls(url.host, url.port or 80, **kwargs)  # type: ignore[arg-type]

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def send(self, method: str, target: str, headers: list[tuple[bytes, bytes]],
                   body: bytes = b"") -> RawResponse:
        """One request; `target` is the path with its query string, `headers` exclude Host/Content-Length."""
        all_headers = [(b"Host", self._host_header), *headers]
        if body or method in ("POST", "PUT", "PATCH"):
            all_headers.append((b"Content-Length", str(len(body)).encode()))
        async with self._slots:
            conn = self._checkout()
            if conn is not None:
                try:
                    return await self._exchange(conn, method, target, all_headers, body)
                except _StaleConnection:
                    # The server closed the kept-alive connection as it went idle (its keep-alive timeout)
                    # just as we reused it: HTTP/1.1 servers close only between requests, so it was never
                    # processed and is sent again, as browsers and urllib3 do for this race.
                    pass
            conn = await self._connect()
            try:
                return await self._exchange(conn, method, target, all_headers, body)
            except _StaleConnection as exc:
                raise httpx.RemoteProtocolError("server closed the connection without a response") from exc

    async def stream(self, method: str, target: str, headers: list[tuple[bytes, bytes]]) -> StreamingResponse:
        """Send a bodiless request on a fresh connection and return once the answer's head has arrived.

        No read timeout: a quiet watch is healthy (the server ends it after timeoutSeconds)."""
        conn = await self._connect()
        protocol = h11.Connection(h11.CLIENT)
        try:
            conn.writer.write(protocol.send(h11.Request(method=method, target=target,
                                                        headers=[(b"Host", self._host_header), *headers]))
                              + protocol.send(h11.EndOfMessage()))
            await conn.writer.drain()
            while True:
                event = await _next_event(conn, protocol)
                if isinstance(event, h11.Response):
                    return StreamingResponse(conn, protocol, event.status_code, list(event.headers))
                if isinstance(event, h11.ConnectionClosed):
                    raise httpx.RemoteProtocolError("connection closed before the answer")
        except OSError as exc:
            conn.close()
            raise httpx.ReadError(str(exc)) from exc
        except BaseException:
            conn.close()
            raise

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=READ_CHUNK * 4)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"connecting to {self.host}:{self.port}: {exc}") from exc
        return _Connection(reader, writer)

    def _checkout(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable:
                conn.reused = True
                return conn
            conn.close()
        return None

    def _checkin(self, conn: _Connection) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    async def _exchange(self, conn: _Connection, method: str, target: str, headers: list[tuple[bytes, bytes]],
                        body: bytes) -> RawResponse:
        protocol = conn.protocol
        out = protocol.send(h11.Request(method=method, target=target, headers=headers))
        if body:
            out += protocol.send(h11.Data(data=body))
        out += protocol.send(h11.EndOfMessage())
        received_any = False
        try:
            async with asyncio.timeout(self.request_timeout):
                conn.writer.write(out)
                await conn.writer.drain()
                status = 0
                response_headers: list[tuple[bytes, bytes]] = []
                chunks: list[bytes] = []
                while True:
                    event = protocol.next_event()
                    if event is h11.NEED_DATA:
                        data = await conn.reader.read(READ_CHUNK)
                        if not data and conn.reused and not received_any:
                            raise _StaleConnection()
                        received_any = True
                        protocol.receive_data(data)
                    elif isinstance(event, h11.Response):
                        status, response_headers = event.status_code, list(event.headers)
                    elif isinstance(event, h11.Data):
                        chunks.append(bytes(event.data))
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        raise httpx.RemoteProtocolError("connection closed mid-response")
        except BaseException as exc:
            conn.close()
            if isinstance(exc, TimeoutError):
                raise httpx.ReadTimeout(f"{method} {target}: no complete answer in {self.request_timeout}s") from exc
            if isinstance(exc, ConnectionError) and conn.reused and not received_any:
                raise _StaleConnection() from exc
            if isinstance(exc, h11.RemoteProtocolError):
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if isinstance(exc, OSError):
                raise httpx.ReadError(f"{method} {target}: {exc}") from exc
            raise
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
            self._checkin(conn)
        else:
            conn.close()
        return RawResponse(status, response_headers, b"".join(chunks))

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
