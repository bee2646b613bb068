"""Writing a kubeconfig that kubectl and aiokube.client both read."""

from __future__ import annotations

import base64
import os

import yaml

from aiokube.cluster.pki import CertKey


def write_kubeconfig(path: str, server: str, *, cluster: str = "aiokube", user: str = "admin",
                     ca_pem: bytes | None = None, client: CertKey | None = None,
                     namespace: str = "default") -> None:
    """A one-context kubeconfig for `server`; with `ca_pem` the server is verified against that CA, with `client`
    the user authenticates with that certificate. Written with mode 0600 from the start (it may hold a key)."""
    cluster_entry: dict[str, str] = {"server": server}
    if ca_pem is not None:
        cluster_entry["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    user_entry: dict[str, str] = {}
    if client is not None:
        user_entry = {"client-certificate-data": client.cert_data, "client-key-data": client.key_data}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": cluster_entry}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user, "namespace": namespace}}],
        "current-context": cluster,
        "preferences": {},
    }
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, path)
