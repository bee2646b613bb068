"""What `aiokube up` started, saved as DATA_DIR/cluster.json so `down` and `status` find it again."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from aiokube.cluster.process import ManagedProcess


@dataclass
class NodeState:
    name: str
    root_dir: str
    containerd_socket: str
    pod_cidr: str
    netns_path: str = ""  # empty: the node shares the host's network namespace
    node_ip: str = ""


@dataclass
class ClusterState:
    """Everything `down` and `status` need to find again what `up` started."""

    data_dir: str
    api_port: int
    etcd_client_port: int
    etcd_peer_port: int
    cluster_id: str = ""  # names this cluster's netns/bridge/veths (aiokube.cluster.netns); derived from data_dir
    api_host: str = "127.0.0.1"  # the address the API server listens on (the node bridge's when there are nodes)
    processes: list[ManagedProcess] = field(default_factory=list)
    nodes: list[NodeState] = field(default_factory=list)

    @property
    def path(self) -> str:
        return os.path.join(self.data_dir, "cluster.json")

    @property
    def server(self) -> str:
        # Always HTTPS: `up` gives every cluster, new or brought back, its PKI (aiokube.cluster.credentials).
        return f"https://{self.api_host}:{self.api_port}"

    @property
    def kubeconfig(self) -> str:
        """The admin kubeconfig (a system:masters client certificate; see aiokube.cluster.credentials)."""
        return os.path.join(self.data_dir, "kubeconfig")

    def save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=2)
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, data_dir: str) -> ClusterState | None:
        try:
            with open(os.path.join(data_dir, "cluster.json")) as f:
                raw = json.load(f)
        except FileNotFoundError:
            return None
        raw["processes"] = [ManagedProcess(**p) for p in raw.get("processes", [])]
        raw["nodes"] = [NodeState(**n) for n in raw.get("nodes", [])]
        return cls(**raw)
