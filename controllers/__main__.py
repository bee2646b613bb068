"""`python -m controllers --kubeconfig FILE [--leader-elect=false] [--controllers a,b] …`: the controller-manager.

SIGTERM/SIGINT cancel the manager, which releases its Lease, so a standby takes over at once. Losing the Lease
ends the process with status 1, as kube-controller-manager does (a supervisor restarts it as a candidate).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys

from aiokube.client import ApiClient
from controllers.manager import ControllerManager, ManagerOptions

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go-style durations: 40s, 5m, 1m30s, 500ms; a bare number means seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}")
    return sum(float(n) * _UNIT[u] for n, u in parts)


def parse_bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m controllers", description="aiokube controller-manager")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--leader-elect", type=parse_bool, nargs="?", const=True, default=True)
    p.add_argument("--controllers", default="*", help="comma-separated controller names, or * for all")
    p.add_argument("--node-monitor-grace-period", type=parse_duration, default=40.0)
    p.add_argument("--node-monitor-period", type=parse_duration, default=5.0)
    p.add_argument("--pod-eviction-timeout", type=parse_duration, default=300.0)
    p.add_argument("--cluster-cidr", default="10.244.0.0/16")
    p.add_argument("--node-cidr-mask-size", type=int, default=24)
    p.add_argument("--concurrent-syncs", type=int, default=2, help="workers per controller")
    p.add_argument("--leader-elect-lease-duration", type=parse_duration, default=15.0)
    p.add_argument("--leader-elect-renew-deadline", type=parse_duration, default=10.0)
    p.add_argument("--leader-elect-retry-period", type=parse_duration, default=2.0)
    p.add_argument("--cluster-signing-cert-file", default=None, help="CA certificate the csrsigning controller uses")
    p.add_argument("--cluster-signing-key-file", default=None, help="its private key")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def options_from(args: argparse.Namespace) -> ManagerOptions:
    names = [n.strip() for n in args.controllers.split(",") if n.strip()]
    return ManagerOptions(
        controllers=None if names in ([], ["*"]) else names,
        leader_elect=args.leader_elect,
        node_monitor_grace_period=args.node_monitor_grace_period,
        node_monitor_period=args.node_monitor_period,
        pod_eviction_timeout=args.pod_eviction_timeout,
        cluster_cidr=args.cluster_cidr,
        node_cidr_mask_size=args.node_cidr_mask_size,
        workers=args.concurrent_syncs,
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
        cluster_signing_cert_file=args.cluster_signing_cert_file,
        cluster_signing_key_file=args.cluster_signing_key_file,
    )


async def amain(args: argparse.Namespace) -> int:
    options = options_from(args)
    async with ApiClient.from_kubeconfig(args.kubeconfig) as client:
        manager = ControllerManager(client, options)
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await manager.run()
        except asyncio.CancelledError:
            logging.getLogger(__name__).info("shutting down")
            return 0
    return 1 if options.leader_elect else 0  # returning while electing means the Lease was lost


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
