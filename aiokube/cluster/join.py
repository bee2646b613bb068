"""`aiokube join`: make this machine a node of a cluster reachable over the network, as `kubeadm join` does.

    1. discovery   read kube-public/cluster-info anonymously over TLS that is not yet verified, and accept the
                   CA inside only if its public-key hash equals --ca-cert-hash; from here on every connection
                   verifies the API server against that CA (so the token is never sent to an unverified server)
    2. bootstrap   authenticate with the bootstrap token (system:bootstrappers), send a CSR for
                   CN=system:node:<name>, O=system:nodes to signer kubernetes.io/kube-apiserver-client-kubelet,
                   and wait until the controller-manager approved and signed it
    3. credentials write DATA_DIR/pki/{ca.crt,kubelet-client.crt,kubelet-client.key} and DATA_DIR/kubelet.conf;
                   the token is not kept anywhere
    3b. agent TLS  as the node: read the kubelet-client CA the control plane publishes in ConfigMap
                   kube-public/aiokube-kubelet-client-ca (the only CA whose clients the node agent accepts:
                   the API server's kubelet-client certificate), register the Node with its addresses, and send a
                   CSR to signer kubernetes.io/kubelet-serving (CN=system:node:<name>, O=system:nodes, SANs: the
                   node IP and name); the controller-manager approves it because the SANs are the Node's own
                   addresses. Writes DATA_DIR/pki/{kubelet-client-ca.crt,kubelet-serving.crt,kubelet-serving.key}:
                   the node agent serves HTTPS and accepts only client certificates of that CA
    4. services    start containerd, the node agent, the service proxy and cluster DNS as background processes
                   (recorded in DATA_DIR/node.json for `aiokube reset`), or write systemd units (`--systemd`);
                   containerd starts without a CNI config: the node agent gives it the podCIDR the
                   controller-manager allocates to the Node (unless --pod-cidr fixes one)
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import os
import platform
import socket
import ssl
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from aiokube.api import certificates as certs
from aiokube.cluster import pki
from aiokube.cluster.credentials import KUBELET_CLIENT_CA_CONFIGMAP, KUBELET_CLIENT_CA_KEY, KUBELET_CLIENT_CA_NAMESPACE
from aiokube.cluster.process import ManagedProcess, adopt, spawn
from aiokube.cluster.tokens import CLUSTER_INFO_NAME, CLUSTER_INFO_NAMESPACE, BootstrapToken, ca_from_cluster_info

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

CLUSTER_INFO_PATH = f"/api/v1/namespaces/{CLUSTER_INFO_NAMESPACE}/configmaps/{CLUSTER_INFO_NAME}"
CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
KUBELET_CLIENT_USAGES = ["digital signature", "key encipherment", "client auth"]
KUBELET_SERVING_USAGES = ["digital signature", "key encipherment", "server auth"]
KUBELET_CLIENT_CA_PATH = f"/api/v1/namespaces/{KUBELET_CLIENT_CA_NAMESPACE}/configmaps/{KUBELET_CLIENT_CA_CONFIGMAP}"
DNS_PORT = 53


class JoinError(Exception):
    """Joining failed; the message says why and what to check."""


@dataclass
class JoinOptions:
    server: str
    token: str
    ca_cert_hash: str
    node_name: str = field(default_factory=socket.gethostname)
    data_dir: str = "/var/lib/aiokube"
    node_ip: str | None = None  # default: the address this machine reaches the API server from
    # Default: none here; the controller-manager (nodeipam) allocates the Node's podCIDR and the node agent hands
    # it to containerd. A fixed CIDR must not overlap any other node's.
    pod_cidr: str | None = None
    start_services: bool = True
    import_images: bool = True
    systemd: bool = False
    unit_dir: str = "/etc/systemd/system"
    timeout: float = 120.0
    # Only for servers that refuse anonymous reads of cluster-info: fetch it with the token before the server is
    # verified. The CA is still pinned by its hash, but a man in the middle could learn the token.
    token_discovery: bool = False


@dataclass
class JoinResult:
    node_name: str
    kubeconfig: str
    node_ip: str
    pod_cidr: str  # the fixed one, or a note that the cluster assigns it
    processes: list[ManagedProcess] = field(default_factory=list)
    units: list[str] = field(default_factory=list)


# --- 1. discovery ----------------------------------------------------------------------------------------------

def _verifying_context(ca_pem: bytes) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca_pem.decode())


async def discover_ca(server: str, token: BootstrapToken, ca_cert_hash: str, *, token_discovery: bool = False,
                      request_timeout: float = 10.0) -> bytes:
    """The cluster CA (PEM) from cluster-info, pinned by `ca_cert_hash`; then the server is verified with it."""
    if not ca_cert_hash.startswith("sha256:"):
        raise JoinError("--ca-cert-hash must have the form sha256:<hex> (from `aiokube token create`)")
    # Unverified on purpose: the CA's identity is established by the hash, not by this connection.
    async with httpx.AsyncClient(base_url=server, verify=False, timeout=request_timeout) as insecure:
        response = await insecure.get(CLUSTER_INFO_PATH)
        if response.status_code in (401, 403) and token_discovery:
            log.warning("the API server refuses anonymous reads of cluster-info; fetching it with the token "
                        "(--token-discovery) before the server is verified")
            response = await insecure.get(CLUSTER_INFO_PATH, headers={"Authorization": f"Bearer {token}"})
    if response.status_code in (401, 403):
        raise JoinError(f"the API server refused the anonymous read of {CLUSTER_INFO_NAMESPACE}/{CLUSTER_INFO_NAME} "
                        f"({response.status_code}); run `aiokube token create` on the control plane, or allow "
                        f"anonymous requests there")
    if response.status_code == 404:
        raise JoinError(f"{CLUSTER_INFO_NAMESPACE}/{CLUSTER_INFO_NAME} does not exist: run `aiokube token create` "
                        f"on the control plane first")
    if not response.is_success:
        raise JoinError(f"reading cluster-info: HTTP {response.status_code}")
    try:
        _, ca_pem = ca_from_cluster_info(response.json())
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as exc:
        raise JoinError(f"cluster-info is malformed: {exc}") from None
    actual = pki.ca_cert_hash(ca)
    if actual.lower() != ca_cert_hash.lower():
        raise JoinError(f"the cluster CA's public key hash is {actual}, not the expected {ca_cert_hash}: "
                        f"refusing to trust this server")
    verifying = _verifying_context(ca_pem)
    async with httpx.AsyncClient(base_url=server, verify=verifying, timeout=request_timeout) as verified:
        try:
            (await verified.get("/version")).raise_for_status()
        except httpx.HTTPError as exc:
            raise JoinError(f"the API server's certificate does not verify against the cluster CA: {exc}") from None
    return ca_pem


# --- 2. bootstrap ----------------------------------------------------------------------------------------------

def node_csr(node_name: str) -> tuple[pki.PrivateKey, x509.CertificateSigningRequest]:
    key = pki._new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, pki.NODES_GROUP),
                         x509.NameAttribute(NameOID.COMMON_NAME, pki.NODE_USER_PREFIX + node_name)])
    return key, x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def csr_object(node_name: str, request: x509.CertificateSigningRequest) -> dict[str, object]:
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "node-csr-", "labels": {"aiokube.io/node": node_name}},
            "spec": {"request": certs.encode_request(request), "signerName": certs.KUBELET_CLIENT_SIGNER,
                     "usages": KUBELET_CLIENT_USAGES}}


async def await_certificate(client: httpx.AsyncClient, body: dict[str, object], key: pki.PrivateKey, *,
                            wait_seconds: float, poll: float = 0.5) -> pki.CertKey:
    """Create the CSR `body` with `client`'s credentials and wait until it is approved and signed."""
    response = await client.post(CSR_PATH, json=body)
    if response.status_code == 401:
        raise JoinError("the bootstrap token was refused (unknown, expired or deleted): create a new one with "
                        "`aiokube token create`")
    if not response.is_success:
        raise JoinError(f"creating the certificate signing request: HTTP {response.status_code}: "
                        f"{response.json().get('message', '') if response.content else ''}")
    name = response.json()["metadata"]["name"]
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        response = await client.get(f"{CSR_PATH}/{name}")
        if response.is_success:
            csr = response.json()
            for condition in certs.conditions(csr):
                if condition.get("type") in (certs.DENIED, certs.FAILED):
                    raise JoinError(f"certificate signing request {name} was {condition['type'].lower()}: "
                                    f"{condition.get('message', '')}")
            issued = (csr.get("status") or {}).get("certificate")
            if issued:
                cert = x509.load_pem_x509_certificates(base64.b64decode(issued))[0]
                if cert.public_key() != key.public_key():
                    raise JoinError(f"certificate signing request {name} came back with another key")
                return pki.CertKey(cert, key)
        await asyncio.sleep(poll)
    raise JoinError(f"certificate signing request {name} was not approved and signed within {wait_seconds:.0f}s: "
                    f"is the controller-manager running with --cluster-signing-cert-file/--cluster-signing-key-file?")


async def request_node_certificate(server: str, ca_pem: bytes, token: BootstrapToken, node_name: str, *,
                                   wait_seconds: float, poll: float = 0.5) -> pki.CertKey:
    """Create the node's CSR as the bootstrap token's user and wait for the signed certificate."""
    key, request = node_csr(node_name)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server, verify=_verifying_context(ca_pem), headers=headers,
                                 timeout=10) as client:
        return await await_certificate(client, csr_object(node_name, request), key, wait_seconds=wait_seconds,
                                       poll=poll)


# --- 3. credentials --------------------------------------------------------------------------------------------

def write_node_kubeconfig(path: str, server: str, ca_pem: bytes, pair: pki.CertKey, node_name: str) -> None:
    user = pki.NODE_USER_PREFIX + node_name
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "aiokube", "cluster": {"server": server,
                                                     "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": user, "user": {"client-certificate-data": pair.cert_data,
                                          "client-key-data": pair.key_data}}],
        "contexts": [{"name": "aiokube", "context": {"cluster": "aiokube", "user": user}}],
        "current-context": "aiokube",
    }
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, path)


async def check_node_credentials(server: str, ca_pem: bytes, cert_file: str, key_file: str, node_name: str) -> None:
    """One request as the node: 200 or 404 (not registered yet) mean the certificate is accepted."""
    context = _verifying_context(ca_pem)
    context.load_cert_chain(cert_file, key_file)
    async with httpx.AsyncClient(base_url=server, verify=context, timeout=10) as client:
        response = await client.get(f"/api/v1/nodes/{node_name}")
    if response.status_code not in (200, 404):
        raise JoinError(f"the node's new credentials were refused: HTTP {response.status_code}")


# --- 3b. the node agent's TLS -----------------------------------------------------------------------------------

def serving_csr(node_name: str, node_ip: str) -> tuple[pki.PrivateKey, x509.CertificateSigningRequest]:
    """The node agent's serving-certificate request: the node's identity, its IP and its name as SANs."""
    key = pki._new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, pki.NODES_GROUP),
                         x509.NameAttribute(NameOID.COMMON_NAME, pki.NODE_USER_PREFIX + node_name)])
    sans = x509.SubjectAlternativeName([x509.DNSName(node_name), x509.IPAddress(ipaddress.ip_address(node_ip))])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).add_extension(sans, critical=False)
    return key, request.sign(key, hashes.SHA256())


def serving_csr_object(node_name: str, request: x509.CertificateSigningRequest) -> dict[str, object]:
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "node-serving-", "labels": {"aiokube.io/node": node_name}},
            "spec": {"request": certs.encode_request(request), "signerName": certs.KUBELET_SERVING_SIGNER,
                     "usages": KUBELET_SERVING_USAGES}}


def node_addresses(node_name: str, node_ip: str) -> list[dict[str, str]]:
    """What the node agent reports in status.addresses (and what the approver checks serving SANs against)."""
    return [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": node_name}]


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


async def register_node(client: httpx.AsyncClient, node_name: str, node_ip: str) -> None:
    """Register the Node (with the labels the node agent gives it) and its addresses before the agent runs: the
    serving certificate is approved only for addresses the Node reports, and the agent needs that certificate to
    start. The agent finds the Node registered and takes over its status."""
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node_name, "labels": {
                "kubernetes.io/hostname": node_name, "kubernetes.io/os": "linux", "kubernetes.io/arch": _arch(),
                "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": _arch()}}}
    response = await client.post("/api/v1/nodes", json=node)
    if not response.is_success and response.status_code != 409:
        raise JoinError(f"registering Node {node_name}: HTTP {response.status_code}: {response.text[:200]}")
    response = await client.patch(f"/api/v1/nodes/{node_name}/status",
                                  json={"status": {"addresses": node_addresses(node_name, node_ip)}},
                                  headers={"Content-Type": "application/merge-patch+json"})
    if not response.is_success:
        raise JoinError(f"reporting Node {node_name}'s addresses: HTTP {response.status_code}: "
                        f"{response.text[:200]}")


async def fetch_kubelet_client_ca(client: httpx.AsyncClient) -> bytes:
    """The kubelet-client CA (PEM) the control plane publishes: the node agent's --client-ca-file."""
    response = await client.get(KUBELET_CLIENT_CA_PATH)
    if response.status_code == 404:
        raise JoinError(f"{KUBELET_CLIENT_CA_NAMESPACE}/{KUBELET_CLIENT_CA_CONFIGMAP} does not exist: the control "
                        f"plane must publish its kubelet-client CA (deploy/README.md) so that the node agent "
                        f"accepts the API server and nobody else")
    if not response.is_success:
        raise JoinError(f"reading the kubelet-client CA: HTTP {response.status_code}")
    pem = str((response.json().get("data") or {}).get(KUBELET_CLIENT_CA_KEY) or "").encode()
    try:
        x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise JoinError(f"{KUBELET_CLIENT_CA_CONFIGMAP} holds no PEM certificate under {KUBELET_CLIENT_CA_KEY}") \
            from None
    return pem


async def agent_tls_credentials(server: str, ca_pem: bytes, cert_file: str, key_file: str, node_name: str,
                                node_ip: str, *, wait_seconds: float) -> tuple[bytes, pki.CertKey]:
    """(kubelet-client CA PEM, serving certificate) for the node agent, obtained with the node's credential."""
    context = _verifying_context(ca_pem)
    context.load_cert_chain(cert_file, key_file)
    async with httpx.AsyncClient(base_url=server, verify=context, timeout=10) as client:
        client_ca = await fetch_kubelet_client_ca(client)
        await register_node(client, node_name, node_ip)
        key, request = serving_csr(node_name, node_ip)
        serving = await await_certificate(client, serving_csr_object(node_name, request), key,
                                          wait_seconds=wait_seconds)
    return client_ca, serving


# --- 4. services -----------------------------------------------------------------------------------------------

def default_node_ip(server: str) -> str:
    """The local address used to reach the API server (a UDP connect sends nothing)."""
    host = urllib.parse.urlsplit(server).hostname or "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 6443))
        return str(s.getsockname()[0])


@dataclass(frozen=True)
class NodeLayout:
    """Where a joined node keeps everything, and the command line of each of its services."""

    data_dir: str
    node_name: str
    node_ip: str
    pod_cidr: str | None = None  # None: the Node's podCIDR from nodeipam

    @property
    def kubeconfig(self) -> str:
        return os.path.join(self.data_dir, "kubelet.conf")

    @property
    def pki_dir(self) -> str:
        return os.path.join(self.data_dir, "pki")

    @property
    def serving_cert(self) -> str:
        return os.path.join(self.pki_dir, "kubelet-serving.crt")

    @property
    def serving_key(self) -> str:
        return os.path.join(self.pki_dir, "kubelet-serving.key")

    @property
    def client_ca_file(self) -> str:
        """The kubelet-client CA: the node agent accepts clients with certificates of this CA only."""
        return os.path.join(self.pki_dir, "kubelet-client-ca.crt")

    @property
    def containerd_dir(self) -> str:
        return os.path.join(self.data_dir, "containerd")

    @property
    def state_file(self) -> str:
        return os.path.join(self.data_dir, "node.json")

    def containerd_config(self) -> object:
        from aiokube.node.containerd import ContainerdConfig

        # Pods reach other nodes' pods through host-gw routes (the service proxy), so no masquerading.
        return ContainerdConfig(root_dir=self.containerd_dir, pod_cidr=self.pod_cidr, netns=None,
                                cgroup_prefix=f"aiokube-{self.node_name}", ip_masq=False)

    def commands(self) -> dict[str, list[str]]:
        """The Python components: name -> argv (containerd is started through aiokube.node.containerd)."""
        py = sys.executable
        socket_path = os.path.join(os.path.abspath(self.containerd_dir), "containerd.sock")
        pod_cidr = ["--pod-cidr", self.pod_cidr] if self.pod_cidr else []
        return {
            "kubelet": [py, "-m", "kubelet", "--kubeconfig", self.kubeconfig, "--node-name", self.node_name,
                        "--containerd-socket", socket_path, "--root-dir", os.path.join(self.data_dir, "kubelet"),
                        "--node-ip", self.node_ip, *pod_cidr,
                        "--cgroup-prefix", f"aiokube-{self.node_name}", "--cluster-dns", self.node_ip,
                        "--tls-cert-file", self.serving_cert, "--tls-private-key-file", self.serving_key,
                        "--client-ca-file", self.client_ca_file],
            "proxy": [py, "-m", "proxy", "--kubeconfig", self.kubeconfig, "--node-name", self.node_name,
                      "--netns-exec", "none"],
            "clusterdns": [py, "-m", "clusterdns", "--kubeconfig", self.kubeconfig,
                           "--bind", f"{self.node_ip}:{DNS_PORT}"],
        }


def start_services(layout: NodeLayout, *, import_images: bool, progress: Progress) -> list[ManagedProcess]:
    from aiokube.node.containerd import ContainerdConfig, start_containerd

    cfg = layout.containerd_config()
    assert isinstance(cfg, ContainerdConfig)
    progress("starting containerd")
    containerd = start_containerd(cfg)
    processes = [adopt("containerd", containerd.pid, ["containerd", "--config", cfg.config_path], cfg.log_path)]
    save_state(layout, processes)
    if import_images:
        from aiokube.node.images import build_images, import_all

        progress("importing the node images (pause, busybox)")
        import_all(containerd.socket, build_images(os.path.join(layout.data_dir, "images")))
    for name, argv in layout.commands().items():
        progress(f"starting {name}")
        processes.append(spawn(name, argv, os.path.join(layout.data_dir, "logs", f"{name}.log")))
        save_state(layout, processes)
    return processes


def save_state(layout: NodeLayout, processes: list[ManagedProcess]) -> None:
    state = {"layout": asdict(layout), "processes": [asdict(p) for p in processes]}
    tmp = layout.state_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=2)
    os.replace(tmp, layout.state_file)


def load_processes(data_dir: str) -> list[ManagedProcess]:
    try:
        with open(os.path.join(data_dir, "node.json")) as f:
            state = json.load(f)
    except FileNotFoundError:
        return []
    return [ManagedProcess(**p) for p in state.get("processes", [])]


def stop_services(data_dir: str, *, progress: Progress = lambda _m: None) -> int:
    """Stop every process `join` started from `data_dir` (newest first); returns how many were running."""
    stopped = 0
    for process in reversed(load_processes(data_dir)):
        if process.alive():
            progress(f"stopping {process.name} (pid {process.pid})")
            process.stop()
            stopped += 1
    return stopped


# --- systemd ---------------------------------------------------------------------------------------------------

UNIT_TEMPLATE = """[Unit]
Description={description}
Documentation=file:///opt/aiokube/deploy/README.md
{after}
[Service]
ExecStart={exec_start}
Restart=always
RestartSec=5
KillMode={kill_mode}
{extra}
[Install]
WantedBy=multi-user.target
"""


def node_units(layout: NodeLayout) -> dict[str, str]:
    """systemd unit files (name -> text) for this node's services, with this node's paths and flags.

    They match deploy/systemd/aiokube-*.service; containerd's KillMode=process keeps running pods alive across
    a containerd restart, as containerd's own unit does."""
    from aiokube.node.containerd import ContainerdConfig, write_config

    cfg = layout.containerd_config()
    assert isinstance(cfg, ContainerdConfig)
    write_config(cfg)
    units = {"aiokube-containerd.service": UNIT_TEMPLATE.format(
        description="aiokube node: containerd", after="After=network-online.target\nWants=network-online.target\n",
        exec_start=f"/usr/bin/containerd --config {cfg.config_path}", kill_mode="process",
        extra="Delegate=yes\nLimitNOFILE=1048576\n")}
    descriptions = {"kubelet": "node agent", "proxy": "service proxy", "clusterdns": "cluster DNS"}
    for name, argv in layout.commands().items():
        after = "After=aiokube-containerd.service\nRequires=aiokube-containerd.service\n" if name == "kubelet" \
            else "After=network-online.target\n"
        units[f"aiokube-{name}.service"] = UNIT_TEMPLATE.format(
            description=f"aiokube node: {descriptions[name]}", after=after, exec_start=" ".join(argv),
            kill_mode="control-group", extra="")
    return units


def write_units(units: dict[str, str], unit_dir: str) -> list[str]:
    os.makedirs(unit_dir, exist_ok=True)
    paths = []
    for name, text in units.items():
        path = os.path.join(unit_dir, name)
        with open(path, "w") as f:
            f.write(text)
        paths.append(path)
    return paths


# --- the whole join --------------------------------------------------------------------------------------------

async def bootstrap_credentials(options: JoinOptions, progress: Progress) -> tuple[bytes, pki.CertKey]:
    try:
        token = BootstrapToken.parse(options.token)
    except ValueError as exc:
        raise JoinError(str(exc)) from None
    progress(f"discovering the cluster at {options.server}")
    ca_pem = await discover_ca(options.server, token, options.ca_cert_hash, token_discovery=options.token_discovery)
    progress("cluster CA verified by its public key hash; requesting the node's client certificate")
    pair = await request_node_certificate(options.server, ca_pem, token, options.node_name,
                                          wait_seconds=options.timeout)
    return ca_pem, pair


def join(options: JoinOptions, *, progress: Progress = print) -> JoinResult:
    node_ip = options.node_ip or default_node_ip(options.server)
    layout = NodeLayout(os.path.abspath(options.data_dir), options.node_name, node_ip, options.pod_cidr)
    os.makedirs(layout.data_dir, mode=0o700, exist_ok=True)
    ca_pem, pair = asyncio.run(bootstrap_credentials(options, progress))
    os.makedirs(layout.pki_dir, mode=0o700, exist_ok=True)
    cert_file, key_file = pki.write_pair(pair, layout.pki_dir, "kubelet-client")
    asyncio.run(check_node_credentials(options.server, ca_pem, cert_file, key_file, options.node_name))
    with open(os.path.join(layout.pki_dir, "ca.crt"), "wb") as f:
        f.write(ca_pem)
    progress("requesting the node agent's serving certificate")
    client_ca, serving = asyncio.run(agent_tls_credentials(options.server, ca_pem, cert_file, key_file,
                                                           options.node_name, node_ip, wait_seconds=options.timeout))
    pki.write_pair(serving, layout.pki_dir, "kubelet-serving")
    with open(layout.client_ca_file, "wb") as f:
        f.write(client_ca)
    write_node_kubeconfig(layout.kubeconfig, options.server, ca_pem, pair, options.node_name)
    progress(f"wrote {layout.kubeconfig} (user {pki.NODE_USER_PREFIX}{options.node_name})")
    result = JoinResult(options.node_name, layout.kubeconfig, node_ip,
                        layout.pod_cidr or "assigned by the controller-manager")
    if options.systemd:
        result.units = write_units(node_units(layout), options.unit_dir)
        progress("start them with: systemctl daemon-reload && systemctl enable --now "
                 + " ".join(os.path.basename(u) for u in result.units))
        progress(f"wrote {len(result.units)} systemd units to {options.unit_dir}")
    elif options.start_services:
        result.processes = start_services(layout, import_images=options.import_images, progress=progress)
    return result
