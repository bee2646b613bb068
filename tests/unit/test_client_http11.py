"""Http11Pool over a real loopback socket: reuse, a stale kept-alive connection, failures as httpx errors."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from aiokube.client import ApiClient, ApiError, RetryPolicy
from aiokube.client.http11 import Http11Pool


class InstantClock:
    """Retry delays pass at once (the client's clock protocol: sleep is all the retry loop uses)."""

    def monotonic(self) -> float:
        return 0.0

    def now(self) -> dt.datetime:
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
StartServer = Callable[[Serve], Awaitable[tuple[str, int]]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


def answer(body: bytes, status: str = "200 OK", close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
            + extra + b"\r\n" + body)


@pytest.fixture
async def server() -> AsyncIterator[StartServer]:
    servers: list[asyncio.Server] = []

    async def start(serve: Serve) -> tuple[str, int]:
        srv = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(srv)
        return srv.sockets[0].getsockname()[:2]

    yield start
    for srv in servers:
        srv.close()


async def test_keeps_one_connection_alive_across_requests(server: StartServer) -> None:
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                request = await read_request(reader)
                writer.write(answer(b'{"echo": %d}' % len(request)))
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    host, port = await server(serve)
    pool = Http11Pool(host, port)
    for _ in range(5):
        raw = await pool.send("POST", "/x?a=b", [(b"Content-Type", b"application/json")], b"{}")
        assert raw.status_code == 200 and raw.header("content-type") == "application/json"
    assert connections == 1 and pool.idle_connections == 1
    await pool.aclose()


async def test_a_connection_closed_while_idle_is_replaced_transparently(server: StartServer) -> None:
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(answer(b"{}"))  # keep-alive promised, but the server closes right after (idle timeout)
        await writer.drain()
        writer.close()

    host, port = await server(serve)
    pool = Http11Pool(host, port)
    await pool.send("GET", "/", [])
    await asyncio.sleep(0.05)  # let the close arrive
    raw = await pool.send("POST", "/", [], b"{}")
    assert raw.status_code == 200 and connections == 2


async def test_connection_close_answer_is_not_pooled(server: StartServer) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"{}", close=True))
        await writer.drain()
        writer.close()

    host, port = await server(serve)
    pool = Http11Pool(host, port)
    assert (await pool.send("GET", "/", [])).status_code == 200
    assert pool.idle_connections == 0


async def test_failures_surface_as_httpx_errors(server: StartServer) -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    host, port = await server(hang)
    with pytest.raises(httpx.ReadTimeout):
        await Http11Pool(host, port, request_timeout=0.1).send("GET", "/", [])
    host, port = await server(garbage)
    with pytest.raises(httpx.RemoteProtocolError):
        await Http11Pool(host, port).send("GET", "/", [])
    srv = await asyncio.start_server(hang, "127.0.0.1", 0)
    free_port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    with pytest.raises(httpx.ConnectError):
        await Http11Pool("127.0.0.1", free_port).send("POST", "/", [], b"{}")


async def test_api_client_sends_json_and_decodes_status_errors(server: StartServer) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        assert b"Content-Type: application/json" in request and b'"kind":"Pod"' in request
        status = b'{"kind":"Status","status":"Failure","reason":"AlreadyExists","message":"exists","code":409}'
        writer.write(answer(status, "409 Conflict"))
        await writer.drain()
        writer.close()

    host, port = await server(serve)
    async with ApiClient(f"http://{host}:{port}", retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(Exception) as info:
            await client.create("pods", {"kind": "Pod", "metadata": {"name": "p", "namespace": "default"}})
        assert getattr(info.value, "code", None) == 409 and getattr(info.value, "reason", None) == "AlreadyExists"


async def test_lean_watch_retries_503_then_streams_and_ends_quietly_on_a_broken_stream(server: StartServer) -> None:
    attempts = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        request = await read_request(reader)
        assert b"watch=true" in request and b"resourceVersion=7" in request
        if attempts == 1:
            writer.write(answer(b'{"kind":"Status","code":503}', "503 Service Unavailable"))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            line = b'{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"8"}}}\n'
            # One event split across two chunks, then the connection breaks mid-chunk.
            writer.write(b"%x\r\n%s\r\n" % (20, line[:20]) + b"%x\r\n%s\r\n" % (len(line) - 20, line[20:]))
            writer.write(b"ff\r\n{\"type\"")
        await writer.drain()
        writer.close()

    host, port = await server(serve)
    async with ApiClient(f"http://{host}:{port}", clock=InstantClock()) as client:
        events = [e async for e in client.watch("pods", resource_version="7")]
    assert attempts == 2
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]


async def test_lean_watch_refusal_raises_its_status(server: StartServer) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b'{"kind":"Status","status":"Failure","reason":"Expired","message":"too old",'
                            b'"code":410}', "410 Gone"))
        await writer.drain()
        writer.close()

    host, port = await server(serve)
    async with ApiClient(f"http://{host}:{port}") as client:
        with pytest.raises(ApiError) as info:
            [e async for e in client.watch("pods", resource_version="1")]
    assert info.value.code == 410 and info.value.reason == "Expired"


async def test_concurrent_requests_beyond_the_limit_wait_for_a_connection(server: StartServer) -> None:
    open_now = peak = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, peak
        open_now += 1
        peak = max(peak, open_now)
        try:
            while True:
                await read_request(reader)
                await asyncio.sleep(0.01)
                writer.write(answer(b"{}"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            open_now -= 1
            writer.close()

    host, port = await server(serve)
    pool = Http11Pool(host, port, max_connections=3, max_idle=3)
    results = await asyncio.gather(*(pool.send("GET", f"/{i}", []) for i in range(12)))
    assert all(r.status_code == 200 for r in results)
    assert peak == 3 and pool.idle_connections == 3
    await pool.aclose()
