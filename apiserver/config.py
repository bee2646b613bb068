"""The API server's settings and the command line that fills them (`python -m apiserver --help`)."""

from __future__ import annotations

import argparse
import ipaddress
import re
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
    # Services (apiserver/allocators): ClusterIPs come from this range, whose first address is the `kubernetes`
    # Service's; NodePorts from this inclusive port range (both Kubernetes' defaults).
    service_cluster_ip_range: str = "10.96.0.0/12"
    service_node_port_range: tuple[int, int] = (30000, 32767)
    # The address other parts (pods through the `kubernetes` Service) reach this server at; None = derived
    # from --bind-address (the primary host address when binding every interface).
    advertise_address: str | None = None
    # Seconds between etcd compactions (each keeps one interval of history), as kube-apiserver's
    # --etcd-compaction-interval; 0 disables compaction (another server or etcd itself does it).
    etcd_compaction_interval: float = 300.0
    # Reaching node agents (logs, exec, stats): with any of these set the node proxy speaks https/wss, verifying
    # the node's serving certificate against the CA and presenting this client certificate; unset = plain http.
    kubelet_certificate_authority: str | None = None
    kubelet_client_certificate: str | None = None
    kubelet_client_key: str | None = None
    # etcd over TLS (https --etcd-servers): the etcd CA and this server's etcd client certificate (all three
    # together); unset = plain http to etcd.
    etcd_cafile: str | None = None
    etcd_certfile: str | None = None
    etcd_keyfile: str | None = None
    # Seconds an API server's lease (apiserver/endpoint_leases.py) stays fresh without renewal: a server that
    # died leaves the `kubernetes` Service's endpoints within this long (Kubernetes' master lease TTL, 15 s).
    endpoint_lease_duration: float = 15.0
    # Processes serving requests on the one port (apiserver/workers.py); one process uses one core at most.
    workers: int = 1


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
    parser.add_argument("--service-cluster-ip-range", default="10.96.0.0/12",
                        help="CIDR of Service ClusterIPs; its first address is the `kubernetes` Service's")
    parser.add_argument("--service-node-port-range", default="30000-32767", type=_port_range,
                        help="inclusive range of NodePorts, e.g. 30000-32767")
    parser.add_argument("--advertise-address",
                        help="IP published in the `kubernetes` Service's endpoints (default: from --bind-address)")
    parser.add_argument("--etcd-compaction-interval", default="5m", type=_duration,
                        help="how often to compact etcd history, e.g. 5m, 90s, 0 (off)")
    parser.add_argument("--kubelet-certificate-authority", help="CA that signed the node agents' serving certs")
    parser.add_argument("--kubelet-client-certificate", help="client certificate presented to node agents")
    parser.add_argument("--kubelet-client-key", help="the private key of --kubelet-client-certificate")
    parser.add_argument("--etcd-cafile", help="verify https etcd members with this CA (PEM)")
    parser.add_argument("--etcd-certfile", help="client certificate presented to etcd (PEM)")
    parser.add_argument("--etcd-keyfile", help="the private key of --etcd-certfile (PEM)")
    parser.add_argument("--endpoint-lease-duration", default="15s", type=_duration,
                        help="how long this server's endpoint lease lasts unrenewed, e.g. 15s (renewed every third)")
    parser.add_argument("--workers", default=1, type=_worker_count,
                        help="processes serving the port, each on its own core (default 1)")
    args = parser.parse_args(argv)
    etcd_tls = (args.etcd_cafile, args.etcd_certfile, args.etcd_keyfile)
    if any(etcd_tls) and not all(etcd_tls):
        parser.error("--etcd-cafile, --etcd-certfile and --etcd-keyfile go together")
    try:
        ipaddress.ip_network(args.service_cluster_ip_range)
    except ValueError as error:
        parser.error(f"--service-cluster-ip-range: {error}")
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
        service_cluster_ip_range=args.service_cluster_ip_range,
        service_node_port_range=args.service_node_port_range,
        advertise_address=args.advertise_address,
        etcd_compaction_interval=args.etcd_compaction_interval,
        kubelet_certificate_authority=args.kubelet_certificate_authority,
        kubelet_client_certificate=args.kubelet_client_certificate,
        kubelet_client_key=args.kubelet_client_key,
        etcd_cafile=args.etcd_cafile,
        etcd_certfile=args.etcd_certfile,
        etcd_keyfile=args.etcd_keyfile,
        endpoint_lease_duration=args.endpoint_lease_duration,
        workers=args.workers,
    )


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of workers: {text!r}") from None
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError(f"--workers must be between 1 and 64, not {count}")
    return count


def _port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port range: {text!r} (want e.g. 30000-32767)") from None
    if not 0 < first <= last < 65536:
        raise argparse.ArgumentTypeError(f"not a valid port range: {text!r}")
    return first, last


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    """A Go-style duration with one unit (`5m`, `90s`, `1h`, `500ms`) or plain seconds (`300`, `0`)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (want e.g. 5m, 90s or 0)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
