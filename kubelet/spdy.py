"""A minimal SPDY/3.1 client for the CRI streaming server's exec (remotecommand `v4.channel.k8s.io`).

Why SPDY: containerd's streaming server also speaks websockets, but only up to `v4.channel.k8s.io`, which has no
way to close stdin; a command reading stdin to its end (`kubectl exec -i … -- cat`) would never finish. Over SPDY
every stream (error, stdin, stdout, stderr) is its own SPDY stream, and a DATA frame with FIN half-closes stdin,
which is how kubectl's own SPDY transport delivers EOF.

Only what remotecommand needs: the HTTP upgrade, SYN_STREAM (client-created streams), DATA frames both ways,
PING echo, RST_STREAM/GOAWAY as ends. Header blocks we send are zlib-compressed as one stream per connection
without a preset dictionary (legal: a receiver only needs the SPDY dictionary when the zlib header asks for it);
header blocks we receive (SYN_REPLY) carry nothing we need, so they are not decompressed.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

SPDY_VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, PING, GOAWAY = 1, 2, 3, 6, 7
FLAG_FIN = 0x01
CONNECT_TIMEOUT = 10.0  # seconds for the connection and the upgrade answer


class SpdyError(Exception):
    pass


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    data: bytes
    fin: bool  # the peer closed its side of this stream


class SpdyConnection:
    """One upgraded connection; the client opens odd-numbered streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._headers_out = zlib.compressobj()
        self._next_stream_id = 1

    @classmethod
    async def connect(cls, url: str, protocol: str) -> SpdyConnection:
        """POST `url` asking to upgrade to SPDY/3.1 with sub-protocol `protocol`; 101 or SpdyError."""
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise SpdyError(f"unsupported streaming URL {url}")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 80),
                                                CONNECT_TIMEOUT)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        request = (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                   f"X-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n\r\n")
        writer.write(request.encode())
        await writer.drain()
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise SpdyError(f"no upgrade answer from {parts.netloc}") from exc
        status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in f"{status_line} ":
            writer.close()
            raise SpdyError(f"streaming server refused the upgrade: {status_line}")
        return cls(reader, writer)

    def _header_block(self, headers: dict[str, str]) -> bytes:
        raw = bytearray(struct.pack(">I", len(headers)))
        for name, value in headers.items():
            for item in (name.lower().encode(), value.encode()):
                raw += struct.pack(">I", len(item)) + item
        # One compression context per connection, each block ending on a sync flush (SPDY/3 §2.6.10.1).
        return self._headers_out.compress(bytes(raw)) + self._headers_out.flush(zlib.Z_SYNC_FLUSH)

    def _control(self, frame_type: int, flags: int, payload: bytes) -> None:
        self._writer.write(struct.pack(">HHI", 0x8000 | SPDY_VERSION, frame_type, (flags << 24) | len(payload))
                           + payload)

    async def open_stream(self, headers: dict[str, str]) -> int:
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        # stream id, associated-to stream id, priority (3 bits) + unused, slot; then the header block.
        self._control(SYN_STREAM, 0, struct.pack(">IIBB", stream_id, 0, 0, 0) + self._header_block(headers))
        await self._writer.drain()
        return stream_id

    async def send(self, stream_id: int, data: bytes, *, fin: bool = False) -> None:
        self._writer.write(struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data))
                           + data)
        await self._writer.drain()

    async def frames(self) -> AsyncIterator[DataFrame]:
        """DATA frames (and stream ends) until the peer goes away or closes the connection."""
        while True:
            try:
                first, second = struct.unpack(">II", await self._reader.readexactly(8))
                payload = await self._reader.readexactly(second & 0xFFFFFF)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            flags = second >> 24
            if not first & 0x80000000:
                yield DataFrame(first & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN))
                continue
            frame_type = first & 0xFFFF
            if frame_type == PING:
                self._control(PING, 0, payload)
                await self._writer.drain()
            elif frame_type in (SYN_REPLY, RST_STREAM) and len(payload) >= 4:
                stream_id = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
                if frame_type == RST_STREAM or flags & FLAG_FIN:
                    yield DataFrame(stream_id, b"", True)
            elif frame_type == GOAWAY:
                return

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass
