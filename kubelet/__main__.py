"""`python -m kubelet --kubeconfig FILE --node-name NAME --containerd-socket /abs/sock --root-dir DIR …`

Runs the node agent and its HTTP server until SIGTERM/SIGINT, then shuts down gracefully: pods keep running
(a restarted agent adopts them), background tasks are cancelled, connections closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Iterator
from typing import Any

import uvicorn

from aiokube.client import ApiClient
from kubelet.agent import Kubelet
from kubelet.config import KubeletConfig
from kubelet.cri import RuntimeClient
from kubelet.server import make_app

log = logging.getLogger("kubelet")

SHUTDOWN_DRAIN_SECONDS = 10.0  # pod syncs in flight may finish (a graceful stop is bounded by this, not by grace)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kubelet", description="aiokube node agent")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--node-name", required=True)
    p.add_argument("--containerd-socket", required=True)
    p.add_argument("--root-dir", required=True)
    p.add_argument("--node-ip", default="")
    p.add_argument("--pod-cidr", default=None,
                   help="register the Node with this podCIDR; default: wait for the controller-manager's allocation "
                        "and hand it to the runtime (CRI UpdateRuntimeConfig)")
    p.add_argument("--cgroup-prefix", default="aiokube")
    p.add_argument("--server-port", type=int, default=10250, help="0 disables the node HTTP server")
    p.add_argument("--server-address", default="0.0.0.0")
    p.add_argument("--tls-cert-file", default=None, help="serve the node server over HTTPS with this cert")
    p.add_argument("--tls-private-key-file", default=None)
    p.add_argument("--client-ca-file", default=None,
                   help="with TLS, require client certificates signed by this CA (the API server's kubelet client)")
    p.add_argument("--cluster-dns", default="", help="comma-separated DNS server IPs for ClusterFirst pods")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--backoff-base", type=float, default=10.0, help="container restart back-off base (s)")
    p.add_argument("--backoff-max", type=float, default=300.0, help="container restart back-off cap (s)")
    p.add_argument("--pleg-period", type=float, default=1.0)
    p.add_argument("--resync-period", type=float, default=10.0)
    p.add_argument("--lease-interval", type=float, default=10.0)
    p.add_argument("--status-interval", type=float, default=10.0)
    p.add_argument("--image-gc-high-threshold", type=int, default=85, help="disk usage %% that starts image GC")
    p.add_argument("--image-gc-low-threshold", type=int, default=80, help="disk usage %% image GC frees down to")
    p.add_argument("--image-minimum-gc-age", type=float, default=120.0, help="seconds before an image may go")
    p.add_argument("--image-maximum-gc-age", type=float, default=0.0, help="seconds unused before removal; 0=off")
    p.add_argument("--image-gc-period", type=float, default=300.0)
    p.add_argument("--pod-infra-container-image", default="localhost/pause:3.9", help="never garbage-collected")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def server_ssl_options(config: KubeletConfig) -> dict[str, Any]:
    """uvicorn's TLS settings for the node server: HTTPS when a cert and key are given, and client-certificate
    authentication when a client CA is given too (as the kubelet's --client-ca-file)."""
    if not (config.tls_cert_file and config.tls_private_key_file):
        return {}
    options: dict[str, Any] = {"ssl_certfile": config.tls_cert_file, "ssl_keyfile": config.tls_private_key_file}
    if config.client_ca_file:
        options.update(ssl_ca_certs=config.client_ca_file, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def config_from_args(args: argparse.Namespace) -> KubeletConfig:
    return KubeletConfig(
        node_name=args.node_name, containerd_socket=args.containerd_socket, root_dir=args.root_dir,
        node_ip=args.node_ip, pod_cidr=args.pod_cidr, cgroup_prefix=args.cgroup_prefix,
        server_port=args.server_port, server_address=args.server_address,
        tls_cert_file=args.tls_cert_file, tls_private_key_file=args.tls_private_key_file,
        client_ca_file=args.client_ca_file,
        cluster_dns=[s for s in args.cluster_dns.split(",") if s], cluster_domain=args.cluster_domain,
        backoff_initial=args.backoff_base, backoff_max=args.backoff_max, image_backoff_initial=args.backoff_base,
        pleg_period=args.pleg_period, resync_period=args.resync_period, lease_interval=args.lease_interval,
        status_interval=args.status_interval,
        image_gc_high_threshold=args.image_gc_high_threshold, image_gc_low_threshold=args.image_gc_low_threshold,
        image_minimum_gc_age=args.image_minimum_gc_age, image_maximum_gc_age=args.image_maximum_gc_age,
        image_gc_period=args.image_gc_period, sandbox_image=args.pod_infra_container_image,
    )


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the agent owns SIGTERM and stops the server itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(config: KubeletConfig, kubeconfig: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with ApiClient.from_kubeconfig(kubeconfig) as api, RuntimeClient(config.containerd_socket) as runtime:
        kubelet = Kubelet(config, api, runtime)
        extra = []
        server: uvicorn.Server | None = None
        if config.server_port:
            server = _QuietServer(uvicorn.Config(make_app(kubelet), host=config.server_address,
                                                 port=config.server_port, log_level="warning", lifespan="off",
                                                 **server_ssl_options(config)))
            extra.append(server.serve())
        main = asyncio.create_task(kubelet.run(extra=extra))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down (pods keep running)")
        if server is not None:
            server.should_exit = True
        await kubelet.workers.drain(SHUTDOWN_DRAIN_SECONDS)
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await main
        stopper.cancel()
        await kubelet.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per API request drowns the agent's own story; keep them for --verbose.
    logging.getLogger("httpx").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    asyncio.run(serve(config_from_args(args), args.kubeconfig))


if __name__ == "__main__":
    main()
