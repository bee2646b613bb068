"""The etcd cluster's PKI: its own CA, each member's serving/peer certificates and the client certificates of
whoever talks to etcd (the API servers, health checks).

As kubeadm does, etcd has a CA of its own, separate from the cluster CA: a certificate the cluster CA signs
(a node's, a user's) must never open etcd, where every Secret lives. With `--client-cert-auth` etcd admits any
client certificate its CA signed, so that CA signs only the API servers' and the health check's.

Files, in one directory per machine (kubeadm's /etc/kubernetes/pki/etcd):
    ca.crt                      the etcd CA (ca.key too where certificates are issued: control-plane machines)
    server.crt / server.key     the member's client-facing certificate (serverAuth + clientAuth)
    peer.crt / peer.key         the member's peer certificate, served to and presented to the other members
    apiserver-etcd-client.*     the API server's client certificate (kube-apiserver --etcd-certfile/--etcd-keyfile)
    healthcheck-client.*        for status and leader checks

Member certificates name the member's IP, 127.0.0.1 and localhost: clients reach a member at its own address
or, on the same machine, at loopback. `localhost` also is the one name every member shares, which is what a
client dialing several members through one gRPC channel checks (apiserver/storage/etcd_tls.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from aiokube.cluster import pki

CA_COMMON_NAME = "etcd-ca"
APISERVER_CLIENT = "apiserver-etcd-client"
APISERVER_CLIENT_CN = "kube-apiserver-etcd-client"  # kubeadm's
HEALTHCHECK_CLIENT = "healthcheck-client"
HEALTHCHECK_CLIENT_CN = "kube-etcd-healthcheck-client"  # kubeadm's
# The SAN every member certificate carries besides its own addresses (see the module docstring).
SHARED_MEMBER_NAME = "localhost"


@dataclass(frozen=True)
class EtcdClientTls:
    """What an etcd client needs: the etcd CA to verify members, and its own certificate and key."""

    ca_file: str
    cert_file: str
    key_file: str


@dataclass(frozen=True)
class EtcdMemberTls:
    """What a member needs: the etcd CA (to verify clients and peers) and its serving and peer pairs."""

    ca_file: str
    cert_file: str
    key_file: str
    peer_cert_file: str
    peer_key_file: str


def load_or_create_etcd_ca(directory: str) -> pki.CertKey:
    """The etcd CA in `directory` (ca.crt/ca.key), created on first use so every machine can share one."""
    return pki.load_or_create_ca(directory, "ca", common_name=CA_COMMON_NAME)


def member_pairs(ca: pki.CertKey, *, name: str, ip: str) -> tuple[pki.CertKey, pki.CertKey]:
    """(server, peer) certificates of the member `name` reached at `ip`."""
    dns_names, ips = [name, SHARED_MEMBER_NAME], sorted({ip, "127.0.0.1"})
    server = pki.issue_server_client_cert(ca, name, dns_names=dns_names, ips=ips)
    peer = pki.issue_server_client_cert(ca, name, dns_names=dns_names, ips=ips)
    return server, peer


def write_member_files(ca: pki.CertKey, directory: str, *, name: str, ip: str) -> EtcdMemberTls:
    """Write ca.crt, server.* and peer.* of member `name` at `ip` into `directory`."""
    ca_file = write_ca_cert(ca, directory)
    server, peer = member_pairs(ca, name=name, ip=ip)
    cert_file, key_file = pki.write_pair(server, directory, "server")
    peer_cert_file, peer_key_file = pki.write_pair(peer, directory, "peer")
    return EtcdMemberTls(ca_file, cert_file, key_file, peer_cert_file, peer_key_file)


def write_client_files(ca: pki.CertKey, directory: str, *, name: str = APISERVER_CLIENT,
                       common_name: str = APISERVER_CLIENT_CN) -> EtcdClientTls:
    """Write ca.crt and a client pair `<name>.crt/.key` into `directory`."""
    ca_file = write_ca_cert(ca, directory)
    cert_file, key_file = pki.write_pair(pki.issue_client_cert(ca, common_name), directory, name)
    return EtcdClientTls(ca_file, cert_file, key_file)


def write_ca_cert(ca: pki.CertKey, directory: str) -> str:
    """`directory`/ca.crt holding the CA certificate only (never its key); returns the path."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "ca.crt")
    existing = b""
    if os.path.exists(path):
        with open(path, "rb") as f:
            existing = f.read()
    if existing != ca.cert_pem:
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as f:
            f.write(ca.cert_pem)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    return path
