"""CRI log files: partial lines joined, tailLines, timestamps, sinceSeconds, limitBytes, follow."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from kubelet.logs import LogOptions, read_log

LOG = (
    "2026-11-23T09:10:40.000000001Z stdout F first\n"
    "2026-11-23T09:10:41.5Z stderr P par\n"
    "2026-11-23T09:10:41.6Z stderr F tial\n"
    "2026-11-23T09:10:43.68646419Z stdout F last\n"
)


def append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


async def collect(path: Path, options: LogOptions, running: bool = False) -> str:
    async def still_running() -> bool:
        return running

    return b"".join([chunk async for chunk in read_log(str(path), options, still_running)]).decode()


async def test_plain_tail_and_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(LOG)
    assert await collect(path, LogOptions()) == "first\npartial\nlast\n"
    assert await collect(path, LogOptions(tail_lines=1)) == "last\n"
    assert await collect(path, LogOptions(tail_lines=1, timestamps=True)) == \
        "2026-11-23T09:10:43.68646419Z last\n"
    assert await collect(path, LogOptions(limit_bytes=8)) == "first\npa"


async def test_since(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(LOG)
    since = dt.datetime(2026, 11, 23, 9, 10, 41, tzinfo=dt.UTC)
    assert await collect(path, LogOptions(since=since)) == "partial\nlast\n"


async def test_follow_reads_new_lines_until_the_container_stops(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(LOG)
    state = {"running": True}

    async def still_running() -> bool:
        return state["running"]

    async def writer() -> None:
        await asyncio.sleep(0.3)
        append(path, "2026-11-23T09:10:44Z stdout F more\n")
        await asyncio.sleep(0.3)
        state["running"] = False

    task = asyncio.create_task(writer())
    out = b"".join([c async for c in read_log(str(path), LogOptions(follow=True, tail_lines=0), still_running)])
    await task
    assert out.decode() == "more\n"
