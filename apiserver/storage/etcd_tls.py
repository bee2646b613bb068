"""An aetcd client over TLS: kube-apiserver's `--etcd-cafile --etcd-certfile --etcd-keyfile` for https members.

aetcd 1.x only ever opens an insecure gRPC channel, so `SecureClient.connect` opens a secure one instead
(verifying members against the etcd CA and presenting the API server's client certificate, which etcd's
`--client-cert-auth` demands) and wires the same stubs aetcd's own connect does.

Which name the members' certificates are checked against: gRPC checks the channel's authority. For one
endpoint that is its host, an IP or DNS name in the member's SANs. For several IP endpoints, EtcdStorage dials
one `ipv4:a:p,b:p` target (gRPC fails over between its addresses), whose authority names no single member, so
the channel checks instead the name every member certificate carries, `localhost` (kubeadm's etcd certificates
carry it too; aiokube/cluster/etcd_pki.py). The trust still comes from the etcd CA, which signs only member
and etcd-client certificates; a client certificate cannot pass as a member (it lacks serverAuth).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aetcd
import grpc
from aetcd import rpc, watcher

SHARED_MEMBER_NAME = "localhost"  # aiokube/cluster/etcd_pki.py SHARED_MEMBER_NAME


@dataclass(frozen=True)
class ClientTlsFiles:
    """PEM files: the CA that signed the members' certificates, and this client's certificate and key."""

    ca_file: str
    cert_file: str
    key_file: str

    def credentials(self) -> grpc.ChannelCredentials:
        with open(self.ca_file, "rb") as f:
            root = f.read()
        with open(self.key_file, "rb") as f:
            key = f.read()
        with open(self.cert_file, "rb") as f:
            chain = f.read()
        return grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)


def secure_options(options: Mapping[str, Any], *, multi_address: bool) -> dict[str, Any]:
    """Channel options for TLS: `options` plus, when one channel dials several members, the shared name
    their certificates are checked against."""
    merged = dict(options)
    if multi_address:
        merged["grpc.ssl_target_name_override"] = SHARED_MEMBER_NAME
    return merged


class SecureClient(aetcd.Client):
    """aetcd.Client whose channel is TLS with a client certificate (no etcd user/password auth)."""

    def __init__(self, *, host: str, port: int, tls: ClientTlsFiles, timeout: int | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        multi_address = host.startswith("ipv4:") and "," in host
        super().__init__(host=host, port=port, timeout=timeout,
                         options=secure_options(options or {}, multi_address=multi_address))
        # Read now, so a missing or unreadable file fails at start-up with its path, not on first use.
        self._credentials = tls.credentials()

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        # The same stubs as aetcd.Client.connect, on a secure channel.
        self.channel = grpc.aio.secure_channel(f"{self._host}:{self._port}", self._credentials,
                                               options=list(self._options.items()))
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata)
        self._connected.set()
