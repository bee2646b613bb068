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
    # Security (issue 7; apiserver/auth/setup.py): all unset = the open plain-HTTP development server.
    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    client_ca_file: str | None = None
    token_auth_file: str | None = None
    authorization_mode: str = "AlwaysAllow"  # or "RBAC"


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(prog="python -m apiserver", description="aiokube API server")
    parser.add_argument("--etcd-servers", default="http://127.0.0.1:2379",
                        help="comma-separated etcd client URLs")
    parser.add_argument("--etcd-prefix", default="/registry", help="key prefix of every stored object")
    parser.add_argument("--bind-address", default="127.0.0.1")
    parser.add_argument("--port", "--secure-port", dest="port", type=int, default=6443)
    parser.add_argument("--bookmark-interval", type=float, default=5.0, help="seconds between watch BOOKMARKs")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--tls-cert-file", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-private-key-file", help="the private key of --tls-cert-file (PEM)")
    parser.add_argument("--client-ca-file", help="authenticate client certificates signed by this CA")
    parser.add_argument("--token-auth-file", help='static bearer tokens: CSV token,user,uid,"group1,group2"')
    parser.add_argument("--authorization-mode", default="AlwaysAllow", choices=("AlwaysAllow", "RBAC"))
    args = parser.parse_args(argv)
    return Config(
        etcd_servers=tuple(s.strip() for s in args.etcd_servers.split(",") if s.strip()),
        etcd_prefix=args.etcd_prefix.rstrip("/") or "/registry",
        bind_address=args.bind_address,
        port=args.port,
        bookmark_interval=args.bookmark_interval,
        log_level=args.log_level,
        tls_cert_file=args.tls_cert_file,
        tls_private_key_file=args.tls_private_key_file,
        client_ca_file=args.client_ca_file,
        token_auth_file=args.token_auth_file,
        authorization_mode=args.authorization_mode,
    )
