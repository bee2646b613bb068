"""DnsServer: UDP and TCP listeners on one address; cluster names from the ClusterResolver, everything else
forwarded to upstream resolvers (normally the host's /etc/resolv.conf), REFUSED when none answers.

UDP answers larger than the client's limit (512 bytes, or its EDNS buffer size) are truncated with TC set, so
the client retries over TCP, where answers are sent whole with the 2-byte length prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct

from dnslib import QTYPE, RCODE, DNSRecord
from dnslib.dns import DNSError

from clusterdns.resolver import ClusterResolver

log = logging.getLogger(__name__)

DEFAULT_UDP_LIMIT = 512
FORWARD_TIMEOUT = 2.0
Address = tuple[str, int]


def read_resolv_conf(path: str = "/etc/resolv.conf") -> list[Address]:
    upstreams: list[Address] = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    upstreams.append((parts[1], 53))
    except OSError:
        pass
    return upstreams


def _udp_limit(request: DNSRecord) -> int:
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(DEFAULT_UDP_LIMIT, int(rr.rclass))
    return DEFAULT_UDP_LIMIT


class _UdpForward(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class DnsServer:
    def __init__(self, resolver: ClusterResolver, upstreams: list[Address], *,
                 forward_timeout: float = FORWARD_TIMEOUT) -> None:
        self._resolver = resolver
        self._upstreams = upstreams
        self._forward_timeout = forward_timeout
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (UDP and TCP); port 0 picks a port free for both, which is returned."""
        for _ in range(20 if port == 0 else 1):
            self._tcp = await asyncio.start_server(self._serve_tcp, host, port)
            bound_port = int(self._tcp.sockets[0].getsockname()[1])
            try:
                await self._listen_udp(host, bound_port)
                break
            except OSError:
                # Port 0 gave a TCP port whose UDP twin is taken: try another one.
                self._tcp.close()
                await self._tcp.wait_closed()
                if port != 0:
                    raise
        else:
            raise OSError(f"no port free for both UDP and TCP on {host}")
        # Never forward to ourselves (a resolv.conf that names this address would loop).
        self._upstreams = [u for u in self._upstreams if u != (host, bound_port)]
        return bound_port

    async def _listen_udp(self, host: str, port: int) -> None:
        server = self

        class _Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                server._udp = transport  # type: ignore[assignment]

            def datagram_received(self, data: bytes, addr: Address) -> None:
                task = asyncio.create_task(server._answer_udp(data, addr))
                server._tasks.add(task)
                task.add_done_callback(server._tasks.discard)

        await asyncio.get_running_loop().create_datagram_endpoint(_Udp, local_addr=(host, port))

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    async def handle(self, data: bytes, *, tcp: bool) -> bytes | None:
        try:
            request = DNSRecord.parse(data)
        except (DNSError, IndexError, ValueError):
            return None  # not DNS: drop, as resolvers do
        if not request.questions:
            return self._error(request, RCODE.FORMERR)
        try:
            reply = self._resolver.resolve(request)
        except Exception:
            log.exception("resolving %s failed", request.q.qname)
            return self._error(request, RCODE.SERVFAIL)
        if reply is None:
            return await self._forward(data, request, tcp=tcp)
        packed = reply.pack()
        if not tcp and len(packed) > _udp_limit(request):
            packed = reply.truncate().pack()
        return bytes(packed)

    @staticmethod
    def _error(request: DNSRecord, rcode: int) -> bytes:
        reply = request.reply()
        reply.header.rcode = rcode
        return bytes(reply.pack())

    async def _forward(self, data: bytes, request: DNSRecord, *, tcp: bool) -> bytes:
        for upstream in self._upstreams:
            try:
                answer = await asyncio.wait_for(self._ask_udp(data, upstream), self._forward_timeout)
                if tcp and DNSRecord.parse(answer).header.tc:
                    answer = await asyncio.wait_for(self._ask_tcp(data, upstream), self._forward_timeout)
                return answer
            except (TimeoutError, OSError, DNSError) as error:
                log.debug("upstream %s:%d failed: %s", upstream[0], upstream[1], error)
        return self._error(request, RCODE.REFUSED)

    @staticmethod
    async def _ask_udp(data: bytes, upstream: Address) -> bytes:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(_UdpForward, remote_addr=upstream)
        try:
            transport.sendto(data)
            return await protocol.answer
        finally:
            transport.close()

    @staticmethod
    async def _ask_tcp(data: bytes, upstream: Address) -> bytes:
        reader, writer = await asyncio.open_connection(*upstream)
        try:
            writer.write(struct.pack("!H", len(data)) + data)
            await writer.drain()
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
        finally:
            writer.close()

    async def _answer_udp(self, data: bytes, addr: Address) -> None:
        answer = await self.handle(data, tcp=False)
        if answer is not None and self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(answer, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # a client may send several queries on one connection
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                answer = await self.handle(await reader.readexactly(length), tcp=True)
                if answer is None:
                    break
                writer.write(struct.pack("!H", len(answer)) + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
