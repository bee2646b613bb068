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
    server_port: int = 10250
    server_address: str = "0.0.0.0"
    tls_cert_file: str | None = None  # both set: the node server speaks HTTPS
    tls_private_key_file: str | None = None
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

    def __post_init__(self) -> None:
        self.root_dir = os.path.abspath(self.root_dir)
        self.containerd_socket = os.path.abspath(self.containerd_socket)
