"""One member of a static N-member etcd cluster (the HA control plane's storage; deploy/README.md).

Every control-plane machine runs one member; all are started with the same `--initial-cluster`
(`name=peer-url,…`) and cluster token, and any majority keeps serving: 3 members survive the loss of one.
The API servers list every member in `--etcd-servers` and fail over between them.

    members = [EtcdMember("cp1", "10.0.0.11"), EtcdMember("cp2", "10.0.0.12"), EtcdMember("cp3", "10.0.0.13")]
    start_member(members[0], members, data_dir="/var/lib/aiokube/etcd", log_path=…)   # on cp1, and so on

With `EtcdMember(…, tls=True)` and each member's files (aiokube/cluster/etcd_pki.py), peer and client traffic
is TLS with client-certificate authentication both ways: a member admits only peers and clients whose
certificate the etcd CA signed. Without TLS (`aiokube up`'s single member on loopback) it is plain HTTP.

    start_member(member, members, data_dir=…, log_path=…, tls=etcd_pki.write_member_files(ca, dir, …))
    leader_of(members, client_tls=etcd_pki.write_client_files(ca, dir, name="healthcheck-client", …))
"""

from __future__ import annotations

import json
import shutil
import ssl
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from aiokube.cluster.etcd_pki import EtcdClientTls, EtcdMemberTls
from aiokube.cluster.process import ManagedProcess, spawn

CLIENT_PORT = 2379
PEER_PORT = 2380


@dataclass(frozen=True)
class EtcdMember:
    name: str
    ip: str
    client_port: int = CLIENT_PORT
    peer_port: int = PEER_PORT
    # https for client and peer URLs; the member then needs its EtcdMemberTls files to start.
    tls: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.ip}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://{self.ip}:{self.peer_port}"


def initial_cluster(members: Sequence[EtcdMember]) -> str:
    """etcd's --initial-cluster: `name=peer-url` for every member, comma-separated."""
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ValueError(f"etcd member names must be unique: {names}")
    return ",".join(f"{m.name}={m.peer_url}" for m in members)


def client_urls(members: Sequence[EtcdMember]) -> str:
    """The API server's --etcd-servers for this cluster."""
    return ",".join(m.client_url for m in members)


def tls_argv(tls: EtcdMemberTls) -> list[str]:
    """etcd's flags for TLS on both sides, each requiring a client certificate signed by the etcd CA."""
    return [
        "--cert-file", tls.cert_file, "--key-file", tls.key_file,
        "--trusted-ca-file", tls.ca_file, "--client-cert-auth",
        "--peer-cert-file", tls.peer_cert_file, "--peer-key-file", tls.peer_key_file,
        "--peer-trusted-ca-file", tls.ca_file, "--peer-client-cert-auth",
    ]


def member_argv(member: EtcdMember, members: Sequence[EtcdMember], *, data_dir: str,
                cluster_token: str = "aiokube-etcd", state: str = "new",
                tls: EtcdMemberTls | None = None) -> list[str]:
    """The etcd command line of `member`; `state="existing"` when adding a member to a running cluster."""
    if member not in members:
        raise ValueError(f"{member.name} is not one of the cluster's members")
    if member.tls != (tls is not None):
        raise ValueError(f"{member.name}: TLS files are needed exactly when the member uses https "
                         f"(tls={member.tls}, files given: {tls is not None})")
    if len({m.tls for m in members}) != 1:
        raise ValueError("every member of a cluster must use the same scheme (all https or all http)")
    # Loopback too, so the API server on the same machine can use 127.0.0.1.
    listen_clients = member.client_url if member.ip == "127.0.0.1" else \
        f"{member.client_url},{member.scheme}://127.0.0.1:{member.client_port}"
    return [
        shutil.which("etcd") or "etcd",
        "--name", member.name,
        "--data-dir", data_dir,
        "--listen-client-urls", listen_clients,
        "--advertise-client-urls", member.client_url,
        "--listen-peer-urls", member.peer_url,
        "--initial-advertise-peer-urls", member.peer_url,
        "--initial-cluster", initial_cluster(members),
        "--initial-cluster-state", state,
        "--initial-cluster-token", cluster_token,
        # Watch progress notifications keep the API servers' watch caches current on an idle cluster.
        "--experimental-watch-progress-notify-interval", "5s",
        *(tls_argv(tls) if tls is not None else []),
    ]


def start_member(member: EtcdMember, members: Sequence[EtcdMember], *, data_dir: str, log_path: str,
                 wrap: Sequence[str] = (), cluster_token: str = "aiokube-etcd",
                 tls: EtcdMemberTls | None = None) -> ManagedProcess:
    """Start `member` in the background (`wrap`, e.g. `nsenter --net=…`, is put in front of the command)."""
    argv = [*wrap, *member_argv(member, members, data_dir=data_dir, cluster_token=cluster_token, tls=tls)]
    return spawn(f"etcd-{member.name}", argv, log_path)


def client_ssl_context(tls: EtcdClientTls) -> ssl.SSLContext:
    """Verifies members against the etcd CA (and their IP/name SANs) and presents the client certificate."""
    context = ssl.create_default_context(cafile=tls.ca_file)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def member_status(client_url: str, *, client_tls: EtcdClientTls | None = None,
                  timeout: float = 2.0) -> dict[str, object]:
    """etcd's maintenance status of the member at `client_url` (its id in header.member_id, and `leader`).
    An https member wants `client_tls`; OSError (ssl.SSLError included) when it cannot be asked."""
    request = urllib.request.Request(f"{client_url}/v3/maintenance/status", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    context = client_ssl_context(client_tls) if client_tls is not None and client_url.startswith("https:") \
        else None
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        status: dict[str, object] = json.loads(response.read())
    return status


def leader_of(members: Sequence[EtcdMember], *, client_tls: EtcdClientTls | None = None) -> EtcdMember | None:
    """The member currently leading, asked of any member that answers; None when none knows a leader."""
    for member in members:
        try:
            status = member_status(member.client_url, client_tls=client_tls)
        except OSError:
            continue
        leader = str(status.get("leader") or "")
        if not leader:
            continue
        for candidate in members:
            try:
                header = member_status(candidate.client_url, client_tls=client_tls).get("header")
            except OSError:
                continue
            if isinstance(header, dict) and str(header.get("member_id")) == leader:
                return candidate
    return None
