"""Applying rendered nftables transactions (`nft -f -`) and reading back which chains and sets the table holds,
so a sync can delete what is no longer wanted (also after a proxy restart)."""

from __future__ import annotations

import json

from proxy.commands import CommandError, CommandRunner
from proxy.nftables import Ruleset, render_cleanup, render_diff, render_sync


class NftUnavailableError(Exception):
    """nft cannot program the kernel here (no binary or no nf_tables support)."""


class NftApplier:
    def __init__(self, runner: CommandRunner) -> None:
        self._runner = runner
        self._applied: Ruleset | None = None  # what the table holds after our last successful write

    async def check_usable(self) -> None:
        try:
            await self._runner.run(["nft", "-c", "-f", "-"], stdin="add table ip aiokube-probe\n")
        except (CommandError, FileNotFoundError) as error:
            raise NftUnavailableError(str(error)) from error

    async def _read_existing(self) -> tuple[set[str], set[str]]:
        try:
            out = await self._runner.run(["nft", "-j", "list", "table", "ip", "aiokube"])
        except CommandError:
            return set(), set()  # no table yet
        chains, sets = set(), set()
        for item in json.loads(out).get("nftables", []):
            if "chain" in item:
                chains.add(item["chain"]["name"])
            elif "set" in item:
                sets.add(item["set"]["name"])
        return chains, sets

    async def apply(self, ruleset: Ruleset, *, full: bool = False) -> None:
        """Write `ruleset`: only the differences from the last write, or everything when `full` (or when what
        the table holds is unknown: first sync, after a failure)."""
        if full or self._applied is None:
            chains, sets = await self._read_existing()
            script = render_sync(ruleset, chains, sets)
        else:
            script = render_diff(ruleset, self._applied)
        try:
            await self._runner.run(["nft", "-f", "-"], stdin=script)
        except CommandError:
            self._applied = None  # the table may differ from what we believe: rewrite it whole next time
            raise
        self._applied = ruleset

    async def cleanup(self) -> None:
        await self._runner.run(["nft", "-f", "-"], stdin=render_cleanup())
        self._applied = None
