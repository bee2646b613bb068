"""Reading a kubeconfig file into connection settings, and turning those into an SSL context.

Supports what a kubeconfig for this project (and for common clusters) uses: the server URL, the CA as
`certificate-authority-data` or `certificate-authority`, `insecure-skip-tls-verify`, a bearer `token` or
`tokenFile`, and client certificates as `client-certificate(-data)` / `client-key(-data)`. Relative file
paths are resolved against the kubeconfig's directory, as kubectl does.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class KubeConfig:
    server: str
    namespace: str = "default"
    ca_data: bytes | None = None  # PEM
    insecure_skip_tls_verify: bool = False
    token: str | None = None
    client_cert_data: bytes | None = None  # PEM
    client_key_data: bytes | None = None  # PEM

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What httpx's `verify=` wants: False to skip verification, else a context with CA and client cert."""
        if not self.server.startswith("https"):
            return True
        if self.insecure_skip_tls_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_data:
            context = ssl.create_default_context(cadata=self.ca_data.decode())
        else:
            context = ssl.create_default_context()
        if self.client_cert_data and self.client_key_data:
            _load_cert_chain_from_memory(context, self.client_cert_data, self.client_key_data)
        return context


def _load_cert_chain_from_memory(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # The ssl module only loads certificate chains from files; the files live only for this call.
    with tempfile.TemporaryDirectory(prefix="aiokube-cert-") as tmp:
        cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        context.load_cert_chain(cert_path, key_path)


def default_kubeconfig_path() -> str:
    env = os.environ.get("KUBECONFIG", "")
    first = env.split(os.pathsep)[0] if env else ""
    return first or os.path.expanduser("~/.kube/config")


def _named(entries: list[dict[str, Any]] | None, name: str, what: str) -> dict[str, Any]:
    for entry in entries or []:
        if entry.get("name") == name:
            return dict(entry.get(what) or {})
    raise ValueError(f"kubeconfig has no {what} named {name!r}")


def _data_or_file(section: dict[str, Any], data_key: str, file_key: str, base_dir: str) -> bytes | None:
    if section.get(data_key):
        return base64.b64decode(section[data_key])
    if section.get(file_key):
        with open(os.path.join(base_dir, section[file_key]), "rb") as f:
            return f.read()
    return None


def load_kubeconfig(path: str | None = None, context: str | None = None) -> KubeConfig:
    """Load one context of a kubeconfig (the current context unless `context` names another)."""
    path = path or default_kubeconfig_path()
    base_dir = os.path.dirname(os.path.abspath(path))
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    context_name = context or config.get("current-context")
    if not context_name:
        raise ValueError(f"kubeconfig {path} has no current-context and no context was given")
    ctx = _named(config.get("contexts"), context_name, "context")
    cluster = _named(config.get("clusters"), ctx["cluster"], "cluster")
    user = _named(config.get("users"), ctx["user"], "user") if ctx.get("user") else {}
    token = user.get("token")
    if not token and user.get("tokenFile"):
        with open(os.path.join(base_dir, user["tokenFile"])) as f:
            token = f.read().strip()
    return KubeConfig(
        server=str(cluster["server"]).rstrip("/"),
        namespace=ctx.get("namespace") or "default",
        ca_data=_data_or_file(cluster, "certificate-authority-data", "certificate-authority", base_dir),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=token or None,
        client_cert_data=_data_or_file(user, "client-certificate-data", "client-certificate", base_dir),
        client_key_data=_data_or_file(user, "client-key-data", "client-key", base_dir),
    )
