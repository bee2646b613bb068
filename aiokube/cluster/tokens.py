"""Bootstrap tokens and the public cluster-info a joining node discovers the cluster from (as kubeadm does).

    token          `<id>.<secret>`: 6 + 16 characters of [a-z0-9]; kept in the Secret kube-system/bootstrap-token-<id>
                   (type bootstrap.kubernetes.io/token) that the API server's bootstrap authenticator reads; it
                   authenticates as system:bootstrap:<id> in system:bootstrappers until `expiration`.
    cluster-info   ConfigMap kube-public/cluster-info whose `kubeconfig` holds the API server address and the
                   cluster CA, readable anonymously through Role/RoleBinding kubeadm:bootstrap-signer-clusterinfo.
                   A joining node trusts that CA only if its public-key hash matches the `--ca-cert-hash` it was
                   given, so reading it unauthenticated over unverified TLS is safe.

`create_token(...)` writes both (cluster-info and its RBAC idempotently) and returns the `aiokube join` command.
"""

from __future__ import annotations

import base64
import datetime
import os
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

import yaml
from cryptography import x509

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.cluster.pki import ca_cert_hash

TOKEN_ALPHABET = string.ascii_lowercase + string.digits
TOKEN_PATTERN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
# kubeadm's extra group for tokens made to join nodes; it lets the cluster tell node tokens from other tokens.
NODE_TOKEN_GROUP = "system:bootstrappers:aiokube:default-node-token"
DEFAULT_TTL = datetime.timedelta(hours=24)

CLUSTER_INFO_NAMESPACE = "kube-public"
CLUSTER_INFO_NAME = "cluster-info"
CLUSTER_INFO_RBAC_NAME = "kubeadm:bootstrap-signer-clusterinfo"
ANONYMOUS_USER = "system:anonymous"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"


@dataclass(frozen=True)
class BootstrapToken:
    token_id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.token_id}.{self.secret}"

    @classmethod
    def parse(cls, text: str) -> BootstrapToken:
        match = TOKEN_PATTERN.match(text.strip())
        if not match:
            raise ValueError("a bootstrap token has the form [a-z0-9]{6}.[a-z0-9]{16}")
        return cls(match.group(1), match.group(2))

    @classmethod
    def generate(cls) -> BootstrapToken:
        def pick(n: int) -> str:
            return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(n))

        return cls(pick(6), pick(16))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def format_expiration(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_secret(token: BootstrapToken, *, ttl: datetime.timedelta | None, now: datetime.datetime,
                 description: str = "aiokube join token", groups: tuple[str, ...] = (NODE_TOKEN_GROUP,)) -> Obj:
    """The Secret that makes `token` valid for authentication (and signing) until now + ttl (forever if None)."""
    data = {
        "token-id": token.token_id,
        "token-secret": token.secret,
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": ",".join(groups),
        "description": description,
    }
    if ttl is not None:
        data["expiration"] = format_expiration(now + ttl)
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": SECRET_PREFIX + token.token_id, "namespace": "kube-system"},
            "data": {k: _b64(v) for k, v in data.items()}}


def cluster_info_kubeconfig(server: str, ca_pem: bytes) -> str:
    """The kubeconfig kubeadm publishes in cluster-info: one unnamed cluster, no users."""
    config: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "preferences": {},
              "clusters": [{"name": "", "cluster": {"server": server,
                                                    "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
              "contexts": None, "current-context": "", "users": None}
    return str(yaml.safe_dump(config, sort_keys=False))


def cluster_info_configmap(server: str, ca_pem: bytes) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CLUSTER_INFO_NAME, "namespace": CLUSTER_INFO_NAMESPACE},
            "data": {"kubeconfig": cluster_info_kubeconfig(server, ca_pem)}}


def cluster_info_role() -> Obj:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": CLUSTER_INFO_RBAC_NAME, "namespace": CLUSTER_INFO_NAMESPACE},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CLUSTER_INFO_NAME],
                       "verbs": ["get"]}]}


def cluster_info_role_binding() -> Obj:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": CLUSTER_INFO_RBAC_NAME, "namespace": CLUSTER_INFO_NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CLUSTER_INFO_RBAC_NAME},
            # kubeadm binds only system:anonymous; the bootstrappers are added for servers that refuse anonymous
            # requests, where a joining node reads cluster-info with its token (`aiokube join --token-discovery`).
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": ANONYMOUS_USER},
                         {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": BOOTSTRAPPERS_GROUP}]}


def ca_from_cluster_info(configmap: Obj) -> tuple[str, bytes]:
    """(server, CA PEM) from a cluster-info ConfigMap; ValueError when it has neither."""
    raw = (configmap.get("data") or {}).get("kubeconfig")
    if not isinstance(raw, str):
        raise ValueError("cluster-info has no kubeconfig")
    config = yaml.safe_load(raw) or {}
    clusters = config.get("clusters") or []
    if not clusters:
        raise ValueError("cluster-info's kubeconfig names no cluster")
    cluster = clusters[0].get("cluster") or {}
    ca_data = cluster.get("certificate-authority-data")
    if not ca_data:
        raise ValueError("cluster-info's kubeconfig carries no certificate-authority-data")
    return str(cluster.get("server") or ""), base64.b64decode(ca_data)


def join_command(server: str, token: BootstrapToken, ca_pem: bytes) -> str:
    ca = x509.load_pem_x509_certificate(ca_pem)
    return f"aiokube join --server {server} --token {token} --ca-cert-hash {ca_cert_hash(ca)}"


async def _create_or_replace(client: Any, resource: str, body: Obj) -> None:
    meta = body["metadata"]
    try:
        await client.create(resource, body, namespace=meta.get("namespace"))
    except ApiError as err:
        if err.code != 409:
            raise
        current = await client.get(resource, meta["name"], namespace=meta.get("namespace"))
        body = {**body, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
        await client.update(resource, body, namespace=meta.get("namespace"))


async def publish_cluster_info(client: Any, server: str, ca_pem: bytes) -> None:
    """Write (or refresh) kube-public/cluster-info and the RBAC that lets anyone read it."""
    await _create_or_replace(client, "configmaps", cluster_info_configmap(server, ca_pem))
    await _create_or_replace(client, "roles", cluster_info_role())
    await _create_or_replace(client, "rolebindings", cluster_info_role_binding())


async def publish_kubelet_client_ca(client: Any, ca_pem: bytes) -> None:
    """Write (or refresh) the kubelet-client CA joining node agents accept clients of, readable by nodes."""
    from aiokube.cluster.credentials import kubelet_client_ca_manifests

    resources = {"ConfigMap": "configmaps", "Role": "roles", "RoleBinding": "rolebindings"}
    for manifest in kubelet_client_ca_manifests(ca_pem):
        await _create_or_replace(client, resources[str(manifest["kind"])], manifest)


async def create_token(client: Any, server: str, ca_pem: bytes, *, ttl: datetime.timedelta | None = DEFAULT_TTL,
                       token: BootstrapToken | None = None, now: datetime.datetime | None = None,
                       kubelet_client_ca_pem: bytes | None = None) -> str:
    """Create a bootstrap token (and publish cluster-info, and the kubelet-client CA when given); returns the
    ready `aiokube join …` command."""
    token = token or BootstrapToken.generate()
    now = now or datetime.datetime.now(datetime.UTC)
    await publish_cluster_info(client, server, ca_pem)
    if kubelet_client_ca_pem is not None:
        await publish_kubelet_client_ca(client, kubelet_client_ca_pem)
    await client.create("secrets", token_secret(token, ttl=ttl, now=now), namespace="kube-system")
    return join_command(server, token, ca_pem)


def parse_ttl(text: str) -> datetime.timedelta | None:
    """`24h`, `30m`, `1h30m`, `90s`; `0` means a token that never expires (as kubeadm's --ttl 0)."""
    if text.strip() in ("0", "0s"):
        return None
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"invalid duration {text!r} (examples: 24h, 30m, 1h30m)")
    seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    return datetime.timedelta(seconds=seconds)


def default_kubelet_client_ca(kubeconfig_path: str) -> str | None:
    """pki/kubelet-client-ca.crt beside the admin kubeconfig, where both `aiokube up` (DATA_DIR/kubeconfig) and
    deploy/make_control_plane_pki.py (/etc/aiokube/admin.conf) put it; None when absent."""
    candidate = os.path.join(os.path.dirname(os.path.abspath(kubeconfig_path)), "pki", "kubelet-client-ca.crt")
    return candidate if os.path.isfile(candidate) else None


def create_token_from_kubeconfig(kubeconfig: str | None, *, server: str | None, ca_file: str | None,
                                 ttl: datetime.timedelta | None, kubelet_client_ca_file: str | None = None) -> str:
    """`aiokube token create`: the admin kubeconfig gives the API access and (unless overridden) the address
    workers should use and the cluster CA; the kubelet-client CA (given, or found beside the kubeconfig) is
    published for joining nodes."""
    import asyncio

    from aiokube.client import ApiClient, load_kubeconfig

    config = load_kubeconfig(kubeconfig)
    kubeconfig_path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    kubelet_ca_file = kubelet_client_ca_file or default_kubelet_client_ca(kubeconfig_path.split(os.pathsep)[0])
    kubelet_ca_pem = None
    if kubelet_ca_file:
        with open(kubelet_ca_file, "rb") as f:
            kubelet_ca_pem = f.read()
    if ca_file:
        with open(ca_file, "rb") as f:
            ca_pem = f.read()
    elif config.ca_data:
        ca_pem = config.ca_data
    else:
        raise ValueError("the kubeconfig carries no cluster CA: pass --ca-cert FILE")
    advertised = server or config.server
    if not advertised.startswith("https://"):
        raise ValueError(f"workers join over HTTPS; {advertised} is not an https:// address (pass --server)")

    async def run() -> str:
        async with ApiClient.from_config(config) as client:
            return await create_token(client, advertised, ca_pem, ttl=ttl, kubelet_client_ca_pem=kubelet_ca_pem)

    return asyncio.run(run())
