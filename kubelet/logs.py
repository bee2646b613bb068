"""Read container logs in the CRI file format (`<RFC3339Nano> <stream> <P|F> <text>`), as `kubectl logs` asks:
tailLines, sinceSeconds/sinceTime, timestamps, limitBytes, and follow (keep reading while the container runs).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

FOLLOW_POLL = 0.2  # seconds between checks for new lines while following


@dataclass
class LogLine:
    timestamp: str
    stream: str
    text: str  # one full line including its "\n" (partial `P` records are joined)


@dataclass
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since: dt.datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None


def parse_timestamp(text: str) -> dt.datetime:
    # CRI writes nanoseconds; Python keeps microseconds.
    main, _, frac = text.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(main + "." + (frac + "000000")[:6]).replace(tzinfo=dt.UTC)


def _records(chunk: str, pending: dict[str, str]) -> list[LogLine]:
    """Turn raw file lines into log lines; `pending` carries partial (P) text per stream across calls."""
    out = []
    for raw in chunk.splitlines():
        parts = raw.split(" ", 3)
        if len(parts) < 3:
            continue
        ts, stream, tag = parts[0], parts[1], parts[2]
        text = parts[3] if len(parts) == 4 else ""
        if tag == "P":
            pending[stream] = pending.get(stream, "") + text
            continue
        out.append(LogLine(ts, stream, pending.pop(stream, "") + text + "\n"))
    return out


def _format(line: LogLine, options: LogOptions) -> str:
    return f"{line.timestamp} {line.text}" if options.timestamps else line.text


def _wanted(line: LogLine, options: LogOptions) -> bool:
    return options.since is None or parse_timestamp(line.timestamp) >= options.since


class _ByteBudget:
    """limitBytes: how much of the log is still to be sent (None: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    def cut(self, data: bytes) -> bytes:
        """`data` cut to what is left, which it then uses up."""
        if self.left is None:
            return data
        data = data[:self.left]
        self.left -= len(data)
        return data

    @property
    def spent(self) -> bool:
        return self.left is not None and self.left <= 0


async def read_log(
    path: str, options: LogOptions, still_running: Callable[[], Awaitable[bool]]
) -> AsyncIterator[bytes]:
    """Yield the formatted log; with `follow`, keep going until the container stops and the file is drained."""
    budget = _ByteBudget(options.limit_bytes)
    pending: dict[str, str] = {}
    try:
        # A local file read in small steps; not worth a thread per log stream.
        f = open(path, encoding="utf-8", errors="replace")  # noqa: ASYNC230
    except OSError:
        return
    try:
        content = f.read()
        # Only complete lines are consumed; a half-written last line waits for the next read.
        cut = content.rfind("\n") + 1
        leftover = content[cut:]
        lines = [line for line in _records(content[:cut], pending) if _wanted(line, options)]
        if options.tail_lines is not None:
            lines = list(deque(lines, maxlen=max(options.tail_lines, 0)))
        for line in lines:
            yield budget.cut(_format(line, options).encode())
            if budget.spent:
                return
        if not options.follow:
            return
        while True:
            chunk = f.read()
            if not chunk:
                if not await still_running():
                    chunk = f.read()  # the last lines written just before the exit
                    if not chunk:
                        return
                else:
                    await asyncio.sleep(FOLLOW_POLL)
                    continue
            content = leftover + chunk
            cut = content.rfind("\n") + 1
            leftover = content[cut:]
            for line in _records(content[:cut], pending):
                if _wanted(line, options):
                    yield budget.cut(_format(line, options).encode())
                    if budget.spent:
                        return
    finally:
        f.close()


def log_exists(path: str) -> bool:
    return bool(path) and os.path.exists(path)
