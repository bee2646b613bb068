"""The API server's settings and the command line that fills them (`python -m apiserver --help`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    etcd_servers: tuple[str, ...] = ("http://127.0.0.1:2379",)
    etcd_prefix: str = "/registry"
    bind_address: str = "127.0.0.1"
    port: int = 6443
    # How often a watch with allowWatchBookmarks=true gets a BOOKMARK; Kubernetes uses ~1 min, but a short
    # interval keeps informers' resume points fresh at negligible cost.
    bookmark_interval: float = 5.0
    # Kubernetes rejects request bodies over 3 MiB (apiserver's MaxRequestBodyBytes).
    max_body_bytes: int = 3 * 1024 * 1024
    log_level: str = "info"


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(prog="python -m apiserver", description="aiokube API server")
    parser.add_argument("--etcd-servers", default="http://127.0.0.1:2379",
                        help="comma-separated etcd client URLs")
    parser.add_argument("--etcd-prefix", default="/registry", help="key prefix of every stored object")
    parser.add_argument("--bind-address", default="127.0.0.1")
    parser.add_argument("--port", "--secure-port", dest="port", type=int, default=6443)
    parser.add_argument("--bookmark-interval", type=float, default=5.0, help="seconds between watch BOOKMARKs")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    return Config(
        etcd_servers=tuple(s.strip() for s in args.etcd_servers.split(",") if s.strip()),
        etcd_prefix=args.etcd_prefix.rstrip("/") or "/registry",
        bind_address=args.bind_address,
        port=args.port,
        bookmark_interval=args.bookmark_interval,
        log_level=args.log_level,
    )
