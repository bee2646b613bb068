"""Running nft and ip, optionally inside a network namespace (`nsenter --net=PATH`, never `ip netns exec`,
which remounts /sys). The proxy itself stays in the host namespace so it can reach the API server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


class CommandError(Exception):
    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(argv[:4])}… exited {returncode}: {stderr.strip()[:2000]}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class CommandRunner:
    netns_path: str | None = None  # None: the namespace this process runs in

    def argv(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net={self.netns_path}", *argv] if self.netns_path else list(argv)

    async def run(self, argv: list[str], stdin: str | None = None, *, check: bool = True) -> str:
        full = self.argv(argv)
        process = await asyncio.create_subprocess_exec(
            *full, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate(stdin.encode() if stdin is not None else None)
        if check and process.returncode != 0:
            raise CommandError(full, process.returncode or -1, err.decode(errors="replace"))
        return out.decode(errors="replace")
