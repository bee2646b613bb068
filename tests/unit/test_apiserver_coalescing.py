"""The response-head coalescing transport (apiserver/coalescing.py): same bytes, same order, fewer writes."""

from __future__ import annotations

import asyncio
from typing import Any

from apiserver.coalescing import CoalescingTransport

HEAD = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n"


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def coalescing() -> tuple[CoalescingTransport, RecordingTransport]:
    inner = RecordingTransport()
    return CoalescingTransport(inner, asyncio.get_running_loop()), inner  # type: ignore[arg-type]


async def test_head_and_body_written_together_go_out_as_one_write() -> None:
    transport, inner = coalescing()
    transport.write(HEAD)
    assert inner.writes == []
    transport.write(b"{}")
    assert inner.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)  # the scheduled flush finds nothing left to send
    assert inner.writes == [HEAD + b"{}"]


async def test_a_head_alone_goes_out_at_the_end_of_the_loop_iteration() -> None:
    # A watch sends its head long before its first event: the client must see the head right away.
    transport, inner = coalescing()
    transport.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
    transport.write(b"5\r\nhello\r\n")
    assert inner.writes[-1] == b"5\r\nhello\r\n"


async def test_other_writes_pass_through_and_close_flushes_first() -> None:
    transport, inner = coalescing()
    transport.write(memoryview(b"raw"))
    transport.write(bytearray(b"more"))
    assert inner.writes == [b"raw", b"more"]
    transport.write(HEAD)
    transport.close()
    assert inner.writes[-1] == HEAD and inner.closed
    await asyncio.sleep(0)
    assert inner.writes.count(HEAD) == 1  # never sent twice
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # everything else is the transport's


async def test_a_held_head_is_dropped_when_the_connection_is_already_closing() -> None:
    transport, inner = coalescing()
    transport.write(HEAD)
    inner.closed = True
    await asyncio.sleep(0)
    assert inner.writes == []
