"""`python -m clusterdns --kubeconfig FILE --bind 10.96.0.10:53 [--cluster-domain cluster.local]
[--resolv-conf /etc/resolv.conf | --upstream IP:PORT …]`: the node's cluster DNS server.

Informers on Services and EndpointSlices mark the zone stale; the next query rebuilds it (a rebuild is a pass
over the caches), so answers follow changes at once without a rebuild per event.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiokube.api.types import Obj
from aiokube.client import ApiClient, Informer
from clusterdns.records import ZoneIndex, build_index
from clusterdns.resolver import ClusterResolver
from clusterdns.server import Address, DnsServer, read_resolv_conf

log = logging.getLogger("clusterdns")


def parse_address(text: str, default_port: int = 53) -> Address:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    return host, int(port) if port else default_port


class LiveZone:
    """The ZoneIndex of the informers' current caches, rebuilt lazily after a change."""

    def __init__(self, services: Informer, slices: Informer, zone: str) -> None:
        self._services, self._slices, self._zone = services, slices, zone
        self._index: ZoneIndex | None = None
        for informer in (services, slices):
            informer.add_handler(self._stale, self._stale, self._stale)

    def _stale(self, *_: Obj) -> None:
        self._index = None

    def __call__(self) -> ZoneIndex:
        if self._index is None:
            self._index = build_index(self._services.store.list(), self._slices.store.list(), self._zone)
        return self._index


async def main_async(args: argparse.Namespace) -> int:
    host, port = parse_address(args.bind)
    upstreams = [parse_address(u) for u in args.upstream] if args.upstream else read_resolv_conf(args.resolv_conf)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with ApiClient.from_kubeconfig(args.kubeconfig) as client:
        services, slices = Informer(client, "services"), Informer(client, "endpointslices")
        zone = LiveZone(services, slices, args.cluster_domain)
        server = DnsServer(ClusterResolver(zone), upstreams)
        async with asyncio.TaskGroup() as tasks:
            informer_tasks = [tasks.create_task(i.run()) for i in (services, slices)]
            await services.wait_synced()
            await slices.wait_synced()
            bound = await server.start(host, port)
            log.info("serving DNS for %s on %s:%d (upstreams %s)", args.cluster_domain, host, bound, upstreams)
            await stop.wait()
            await server.close()
            for task in informer_tasks:
                task.cancel()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterdns", description="aiokube cluster DNS")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--bind", default="127.0.0.1:53", help="IP:PORT to serve on (UDP and TCP)")
    parser.add_argument("--cluster-domain", default="cluster.local")
    parser.add_argument("--resolv-conf", default="/etc/resolv.conf", help="where upstream resolvers are listed")
    parser.add_argument("--upstream", action="append", default=[], help="IP[:PORT] instead of --resolv-conf")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
