"""`python -m scheduler --kubeconfig FILE [--leader-elect]`: run the scheduler until SIGTERM/SIGINT.

With --leader-elect only the holder of Lease kube-system/aiokube-scheduler schedules; losing the lease stops
scheduling and exits non-zero (a fresh process rebuilds its cache from scratch, like kube-scheduler).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

from scheduler.config import ConfigError, load_config_weights, parse_score_weights
from scheduler.scheduler import Scheduler

log = logging.getLogger("scheduler")

LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "aiokube-scheduler"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scheduler", description=__doc__)
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the API server to schedule for")
    parser.add_argument("--leader-elect", action="store_true", help="schedule only while holding the Lease")
    parser.add_argument("--percentage-of-nodes-to-score", type=int, default=0,
                        help="0 = adaptive (50%% of 100 nodes, falling to 5%%), as in kube-scheduler")
    parser.add_argument("--bind-concurrency", type=int, default=32)
    parser.add_argument("--config", help="KubeSchedulerConfiguration YAML (profiles[0].plugins.score weights)")
    parser.add_argument("--score-weights", default="", help="Name=N,... score weights (override --config)")
    parser.add_argument("--lease-duration", type=float, default=15.0, help="leader election lease, seconds")
    parser.add_argument("--renew-deadline", type=float, default=10.0, help="leader election renew deadline")
    parser.add_argument("--retry-period", type=float, default=2.0, help="leader election retry period")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def score_weights(args: argparse.Namespace) -> dict[str, int]:
    weights = load_config_weights(args.config) if args.config else {}
    weights.update(parse_score_weights(args.score_weights))
    return weights


async def main_async(args: argparse.Namespace) -> int:
    from aiokube.client import ApiClient, LeaderElector, load_kubeconfig

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    lost = False
    config = load_kubeconfig(args.kubeconfig)
    # One client: its writes (bindings, events) take the client's lean HTTP/1.1 path on plain http://, while
    # watches stream through httpx's own pool.
    async with ApiClient.from_config(config) as client:
        scheduler = Scheduler(client, weights=score_weights(args),
                              percentage_of_nodes_to_score=args.percentage_of_nodes_to_score,
                              bind_concurrency=args.bind_concurrency)
        if args.leader_elect:
            elector = LeaderElector(client, namespace=LEASE_NAMESPACE, name=LEASE_NAME,
                                    identity=f"{socket.gethostname()}_{os.getpid()}",
                                    lease_duration=args.lease_duration, renew_deadline=args.renew_deadline,
                                    retry_period=args.retry_period)

            def stopped() -> None:
                nonlocal lost
                lost = not stop.is_set()

            work = asyncio.create_task(elector.run(scheduler.run, stopped))
        else:
            work = asyncio.create_task(scheduler.run())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (work, stopper):
            task.cancel()
        await asyncio.gather(work, stopper, return_exceptions=True)
        if work in done and not work.cancelled() and work.exception() is not None:
            log.error("scheduler failed: %r", work.exception())
            return 1
    if lost:
        log.error("lost the leader lease; exiting")
        return 1
    log.info("scheduler stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO: hundreds of lines a second while binding.
    logging.getLogger("httpx").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        score_weights(args)  # fail fast, before connecting, on a bad --config/--score-weights
    except (ConfigError, OSError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
