"""Run the real API server with TLS, client-certificate and token authentication and RBAC on loopback.

`secure_cluster(etcd_url, etcd_prefix, directory)` writes a CA, a serving certificate for 127.0.0.1 and a
token file into `directory`, starts uvicorn in a thread (as tests/support/apiserver.py does for plain HTTP)
and yields a `SecureCluster` that can mint client credentials."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from aiokube.cluster import pki
from apiserver.app import create_app
from apiserver.auth.setup import secure, serving_options
from apiserver.config import Config
from tests.support.apiserver import serving_in_thread
from tests.support.etcd import free_port

TOKENS = {  # token -> (user, uid, groups)
    "alice-token-0123456789": ("alice", "uid-alice", ("developers",)),
    "bob-token-0123456789": ("bob", "uid-bob", ()),
}


@dataclass
class SecureCluster:
    url: str
    directory: str
    ca: pki.CertKey

    @property
    def ca_file(self) -> str:
        return os.path.join(self.directory, "ca.crt")

    def client_cert(self, user: str, groups: tuple[str, ...] = ()) -> tuple[str, str]:
        """(cert path, key path) of a fresh client certificate for `user` in `groups`."""
        pair = pki.issue_client_cert(self.ca, user, groups)
        return pki.write_pair(pair, self.directory, user.replace(":", "_"))

    def ssl_context(self, user: str | None = None, groups: tuple[str, ...] = ()) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if user is not None:
            context.load_cert_chain(*self.client_cert(user, groups))
        return context


@contextmanager
def secure_cluster(etcd_url: str, etcd_prefix: str, directory: str, *,
                   authorization_mode: str = "RBAC") -> Iterator[SecureCluster]:
    ca = pki.create_ca()
    pki.write_pair(ca, directory, "ca")
    serving = pki.issue_serving_cert(ca, "kube-apiserver", dns_names=["localhost"], ips=["127.0.0.1"])
    cert_file, key_file = pki.write_pair(serving, directory, "apiserver")
    token_file = os.path.join(directory, "tokens.csv")
    with open(token_file, "w") as f:
        for token, (user, uid, groups) in TOKENS.items():
            f.write(f'{token},{user},{uid},"{",".join(groups)}"\n')
    port = free_port()
    config = Config(etcd_servers=(etcd_url,), etcd_prefix=etcd_prefix, port=port, bookmark_interval=0.5,
                    tls_cert_file=cert_file, tls_private_key_file=key_file,
                    client_ca_file=os.path.join(directory, "ca.crt"), token_auth_file=token_file,
                    authorization_mode=authorization_mode)
    server = uvicorn.Server(uvicorn.Config(secure(create_app(config), config), host="127.0.0.1", port=port,
                                           lifespan="on", log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=2, **serving_options(config)))
    cluster = SecureCluster(f"https://127.0.0.1:{port}", directory, ca)
    context = ssl.create_default_context(cafile=cluster.ca_file)
    with serving_in_thread(server, cluster.url, f"secure-apiserver-{port}", context):
        yield cluster
