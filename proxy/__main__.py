"""`python -m proxy --kubeconfig FILE --node-name NAME [--netns-exec none|PATH] [--cleanup] [--cleanup-on-exit]
[--no-routes] [--proxy-mode auto|nftables|iptables] [--iptables-binary iptables]`.

`--proxy-mode auto` (the default) uses nftables, falling back to iptables when nft is unusable here.

`--netns-exec PATH` runs nft/ip inside that network namespace (the node's) while this process stays where it
can reach the API server. `--cleanup` removes the nftables table, the AIOKUBE- iptables chains (of iptables-nft
and iptables-legacy alike) and the routes this proxy added, then exits. On SIGTERM
the rules stay (like kube-proxy) unless `--cleanup-on-exit`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiokube.client import ApiClient
from proxy.commands import CommandError, CommandRunner
from proxy.iptables import PREFIX
from proxy.iptables_applier import IptablesApplier, IptablesUnavailableError
from proxy.nft_applier import NftApplier, NftUnavailableError
from proxy.proxier import DEFAULT_DEBOUNCE, Proxier
from proxy.routes import RouteSyncer

log = logging.getLogger("proxy")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m proxy", description="aiokube service proxy")
    parser.add_argument("--kubeconfig", help="kubeconfig of the cluster (not needed with --cleanup)")
    parser.add_argument("--node-name", default="", help="this node's Node name")
    parser.add_argument("--netns-exec", default="none",
                        help="network namespace path to program (nsenter --net=PATH), or 'none' for this one")
    parser.add_argument("--cleanup", action="store_true",
                        help="remove every rule (nftables and iptables) and route this proxy owns, then exit")
    parser.add_argument("--cleanup-on-exit", action="store_true", help="remove the rules on SIGTERM")
    parser.add_argument("--no-routes", action="store_true", help="do not manage host-gw routes to other nodes")
    parser.add_argument("--proxy-mode", choices=("auto", "nftables", "iptables"), default="auto",
                        help="rule backend; auto = nftables, or iptables when nft is unusable")
    parser.add_argument("--iptables-binary", default="iptables",
                        help="iptables, iptables-nft or iptables-legacy (its -save/-restore are used too)")
    parser.add_argument("--debounce", type=float, default=DEFAULT_DEBOUNCE, help="seconds to batch changes")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


async def cleanup(runner: CommandRunner, iptables_binary: str = "iptables") -> None:
    """Remove whatever any backend left (a node may have switched modes), then the routes."""
    nft = NftApplier(runner)
    try:
        await nft.check_usable()
    except NftUnavailableError:
        pass
    else:
        await nft.cleanup()
    # Both iptables backends are looked at: a node may have run with either. Only a backend whose rules mention
    # our chains is cleaned (a bare `-save` lists existing tables without creating any).
    for binary in dict.fromkeys((iptables_binary, "iptables-nft", "iptables-legacy")):
        try:
            ours = PREFIX in await runner.run([f"{binary}-save"])
        except (CommandError, FileNotFoundError):
            continue
        if ours:
            await IptablesApplier(runner, binary).cleanup()
    await RouteSyncer(runner).cleanup()


async def choose_backend(runner: CommandRunner, mode: str, iptables_binary: str) -> NftApplier | IptablesApplier:
    """The rule writer for `mode`; raises the backend's *UnavailableError when none is usable."""
    if mode in ("auto", "nftables"):
        nft = NftApplier(runner)
        try:
            await nft.check_usable()
            return nft
        except NftUnavailableError as error:
            if mode == "nftables":
                raise
            log.warning("nftables is not usable here (%s); falling back to iptables", error)
    iptables = IptablesApplier(runner, iptables_binary)
    await iptables.check_usable()
    return iptables


async def main_async(args: argparse.Namespace) -> int:
    runner = CommandRunner(None if args.netns_exec in ("", "none") else args.netns_exec)
    if args.cleanup:
        await cleanup(runner, args.iptables_binary)
        return 0
    if not args.kubeconfig or not args.node_name:
        log.error("--kubeconfig and --node-name are required")
        return 2
    try:
        nft = await choose_backend(runner, args.proxy_mode, args.iptables_binary)
    except (NftUnavailableError, IptablesUnavailableError) as error:
        # Refuse loudly rather than run without programming anything.
        log.error("no usable rule backend for --proxy-mode %s: %s", args.proxy_mode, error)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with ApiClient.from_kubeconfig(args.kubeconfig) as client:
        proxier = Proxier(client, args.node_name, nft, None if args.no_routes else RouteSyncer(runner),
                          debounce=args.debounce)
        task = asyncio.create_task(proxier.run(), name="proxier")
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        stopper.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("proxy failed")
            return 1
    if args.cleanup_on_exit:
        await cleanup(runner, args.iptables_binary)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
