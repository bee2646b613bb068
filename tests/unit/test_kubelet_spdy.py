"""kubelet/spdy.py against a small in-process SPDY/3 peer: upgrade, SYN_STREAM header blocks, DATA both ways,
FIN as stdin close, PING echo."""

from __future__ import annotations

import asyncio
import struct
import zlib

from kubelet.spdy import FLAG_FIN, PING, SYN_STREAM, SpdyConnection


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    first, second = struct.unpack(">II", await reader.readexactly(8))
    return first, second >> 24, await reader.readexactly(second & 0xFFFFFF)


def decode_headers(block: bytes) -> dict[str, str]:
    count, = struct.unpack(">I", block[:4])
    headers, pos = {}, 4
    for _ in range(count):
        items = []
        for _ in range(2):
            size, = struct.unpack(">I", block[pos:pos + 4])
            items.append(block[pos + 4:pos + 4 + size].decode())
            pos += 4 + size
        headers[items[0]] = items[1]
    return headers


async def test_exec_streams_over_spdy() -> None:
    seen: dict[str, object] = {}

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        seen["request"] = request.decode()
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\n\r\n")
        inflate = zlib.decompressobj()
        streams = {}
        for _ in range(2):
            first, _flags, payload = await read_frame(reader)
            assert first & 0x80000000 and first & 0xFFFF == SYN_STREAM
            stream_id = struct.unpack(">I", payload[:4])[0]
            streams[decode_headers(inflate.decompress(payload[10:]))["streamtype"]] = stream_id
        seen["streams"] = streams
        writer.write(struct.pack(">HHI", 0x8000 | 3, PING, 4) + struct.pack(">I", 7))
        received, stdin_closed = b"", False
        while not (stdin_closed and "ping" in seen):  # the PING answer comes once the client reads frames
            first, flags, payload = await read_frame(reader)
            if first & 0x80000000:
                seen["ping"] = payload
                continue
            received += payload
            stdin_closed = bool(flags & FLAG_FIN)
        out = streams["stdout"]
        writer.write(struct.pack(">II", out, (FLAG_FIN << 24) | len(received)) + received)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        connection = await SpdyConnection.connect(f"http://127.0.0.1:{port}/exec/tok?x=1", "v4.channel.k8s.io")
        stdin = await connection.open_stream({"streamType": "stdin"})
        stdout = await connection.open_stream({"streamType": "stdout"})
        await connection.send(stdin, b"hello ")
        await connection.send(stdin, b"world", fin=True)
        frames = [f async for f in connection.frames()]  # answers the PING, then stdout, then the end
        await connection.close()
    assert "POST /exec/tok?x=1 HTTP/1.1" in str(seen["request"])
    assert "X-Stream-Protocol-Version: v4.channel.k8s.io" in str(seen["request"])
    assert seen["streams"] == {"stdin": stdin, "stdout": stdout} and (stdin, stdout) == (1, 3)
    assert seen["ping"] == struct.pack(">I", 7)
    assert [(f.stream_id, f.data, f.fin) for f in frames] == [(stdout, b"hello world", True)]
