"""The node agent's settings (from flags), with the defaults the kubelet uses and why."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class KubeletConfig:
    node_name: str
    containerd_socket: str
    root_dir: str
    node_ip: str = ""
    pod_cidr: str | None = None
    cgroup_prefix: str = "aiokube"
    cgroup_root: str = "/sys/fs/cgroup"  # where housekeeping looks for leftover pod cgroups (tests: a temp dir)
    server_port: int = 10250
    server_address: str = "0.0.0.0"
    tls_cert_file: str | None = None  # both set: the node server speaks HTTPS
    tls_private_key_file: str | None = None
    client_ca_file: str | None = None  # with TLS: clients (the API server) must present a cert signed by this CA
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"
    # Container restart back-off: 10 s doubling to 5 min (kubelet defaults); tests shrink the base.
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    image_backoff_initial: float = 10.0
    pleg_period: float = 1.0  # seconds between runtime relists
    resync_period: float = 10.0  # every pod is synced at least this often even without events
    housekeeping_period: float = 2.0  # stray runtime pods and volume dirs are cleaned this often
    lease_interval: float = 10.0
    status_interval: float = 10.0
    # Image GC (kubelet defaults): high/low disk-usage thresholds, minimum age, maximum unused age (0 = off).
    image_gc_high_threshold: int = 85
    image_gc_low_threshold: int = 80
    image_minimum_gc_age: float = 120.0
    image_maximum_gc_age: float = 0.0
    image_gc_period: float = 300.0  # the kubelet runs image GC every 5 minutes
    sandbox_image: str = "localhost/pause:3.9"  # never removed; must match containerd's sandbox_image

    def __post_init__(self) -> None:
        self.root_dir = os.path.abspath(self.root_dir)
        self.containerd_socket = os.path.abspath(self.containerd_socket)
