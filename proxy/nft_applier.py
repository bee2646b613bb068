"""Applying rendered nftables transactions (`nft -f -`) and reading back which chains and sets the table holds,
so a sync can delete what is no longer wanted (also after a proxy restart)."""

from __future__ import annotations

import json

from proxy.commands import CommandError, CommandRunner
from proxy.nftables import Ruleset, render_cleanup, render_sync


class NftUnavailableError(Exception):
    """nft cannot program the kernel here (no binary or no nf_tables support)."""


class NftApplier:
    def __init__(self, runner: CommandRunner) -> None:
        self._runner = runner
        self._chains: set[str] | None = None  # what the table holds after our last successful write
        self._sets: set[str] = set()

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

    async def apply(self, ruleset: Ruleset) -> None:
        if self._chains is None:
            self._chains, self._sets = await self._read_existing()
        try:
            await self._runner.run(["nft", "-f", "-"], stdin=render_sync(ruleset, self._chains, self._sets))
        except CommandError:
            self._chains = None  # the table may differ from what we believe: read it again next time
            raise
        self._chains, self._sets = set(ruleset.chains), set(ruleset.affinity_sets)

    async def cleanup(self) -> None:
        await self._runner.run(["nft", "-f", "-"], stdin=render_cleanup())
        self._chains, self._sets = set(), set()
