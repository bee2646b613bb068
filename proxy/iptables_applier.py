"""Applying the iptables fallback: write our chains in one `iptables-restore --noflush` transaction (atomic per
table; the host's own rules are never flushed), then ensure the jumps from the built-in chains.

The first write (and every `full` resync, and the one after a failure) rewrites all our chains and deletes
stale ones found by `iptables-save`; every other write sends only the chains that changed since the last
successful one (`render_diff`), so an endpoint change costs one Service's chains, not the whole node's.

`binary` picks the backend: "iptables" (whatever the host's alternative is) or "iptables-legacy"/"iptables-nft".
"""

from __future__ import annotations

from proxy.commands import CommandError, CommandRunner
from proxy.iptables import (
    JUMPS,
    IptablesRules,
    build_iptables,
    chains_in_save,
    jump_rule,
    render_cleanup,
    render_diff,
    render_restore,
)
from proxy.model import ServicePort


class IptablesUnavailableError(Exception):
    """iptables cannot program the kernel here."""


class IptablesApplier:
    def __init__(self, runner: CommandRunner, binary: str = "iptables") -> None:
        self._runner = runner
        self._binary = binary
        self._jumps_ensured = False
        # What our chains hold after the last successful write (None: unknown, rewrite them all next time).
        self._applied: IptablesRules | None = None
        self.last_script = ""  # the last restore text sent (for tests and the verbose log)

    def _tool(self, suffix: str = "") -> str:
        # iptables-legacy -> iptables-legacy-save / -restore; iptables -> iptables-save / -restore.
        return f"{self._binary}{suffix}"

    async def check_usable(self) -> None:
        try:
            await self._runner.run([self._tool("-save"), "-t", "nat"])
        except (CommandError, FileNotFoundError) as error:
            raise IptablesUnavailableError(str(error)) from error

    async def _existing(self, table: str) -> set[str]:
        return chains_in_save(await self._runner.run([self._tool("-save"), "-t", table]))

    async def _ensure_jumps(self) -> None:
        for table, builtin, target in JUMPS:
            rule = jump_rule(table, builtin, target)
            if not await self._check(table, rule):
                await self._runner.run([self._binary, "-w", "-t", table, "-I", *rule])

    async def _check(self, table: str, rule: list[str]) -> bool:
        try:
            await self._runner.run([self._binary, "-w", "-t", table, "-C", *rule])
        except CommandError:
            return False
        return True

    async def apply_ports(self, ports: list[ServicePort], node_name: str, *, full: bool = False) -> None:
        """Make our chains match `ports`: only the changed chains, or all of them when `full` or when what the
        kernel holds is unknown. Our chains must exist before the jumps to them, so the restore runs first on
        a fresh node."""
        rules = build_iptables(ports, node_name)
        if full or self._applied is None:
            script = render_restore(rules, await self._existing("nat"), await self._existing("filter"))
        else:
            script = render_diff(rules, self._applied)
        self.last_script = script
        if script:
            try:
                await self._runner.run([self._tool("-restore"), "-w", "--noflush"], stdin=script)
            except CommandError:
                self._applied = None  # the chains may differ from what we believe: rewrite them all next time
                raise
        self._applied = rules
        if full or not self._jumps_ensured:
            await self._ensure_jumps()
            self._jumps_ensured = True

    async def cleanup(self) -> None:
        """Remove the jumps, then every chain of ours."""
        for table, builtin, target in JUMPS:
            rule = jump_rule(table, builtin, target)
            while await self._check(table, rule):
                await self._runner.run([self._binary, "-w", "-t", table, "-D", *rule])
        nat, filter_ = await self._existing("nat"), await self._existing("filter")
        if nat or filter_:
            await self._runner.run([self._tool("-restore"), "-w", "--noflush"],
                                   stdin=render_cleanup(nat, filter_))
        self._jumps_ensured = False
        self._applied = None
