"""The node server over HTTPS (client certs required) and the API server's node proxy reaching it over TLS:
pods/log and metrics.k8s.io through a real API server (on etcd) to a real TLS node server.

The node server runs the agent's real app (kubelet/server.py) with its real TLS options
(kubelet.__main__.server_ssl_options); its runtime is a small stand-in that reports one exited container and
its CRI log file, so no containerd is needed. The API server gets its real --kubelet-certificate-authority /
--kubelet-client-certificate / --kubelet-client-key settings (apiserver/config.py), as `aiokube up` passes them."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from aiokube.api.types import Obj
from aiokube.cluster import pki
from kubelet import labels as L
from kubelet.__main__ import server_ssl_options
from kubelet.config import KubeletConfig
from kubelet.cri import pb
from kubelet.server import make_app
from tests.support.apiserver import running_apiserver
from tests.support.etcd import free_port

pytestmark = pytest.mark.timeout(60)

NODE = "tls-node"
POD: Obj = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": "uid-web"},
            "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "busybox"}]}}


class StandInRuntime:
    """Just what the log and stats endpoints ask of CRI: one exited container with a log file."""

    def __init__(self, log_path: str) -> None:
        self.log_path = log_path

    async def list_pod_sandboxes(self, labels: dict[str, str] | None = None) -> list[pb.PodSandbox]:
        return []

    async def list_containers(self, labels: dict[str, str] | None = None) -> list[pb.Container]:
        container_labels = {L.MANAGED_BY: NODE, L.POD_UID: "uid-web", L.POD_NAME: "web",
                            L.POD_NAMESPACE: "default", L.CONTAINER_NAME: "app"}
        return [pb.Container(id="c1", pod_sandbox_id="s1", labels=container_labels, state=pb.CONTAINER_EXITED)]

    async def container_status(self, container_id: str, *, verbose: bool = False) -> pb.ContainerStatus:
        return pb.ContainerStatus(id=container_id, state=pb.CONTAINER_EXITED, log_path=self.log_path)

    async def list_container_stats(self) -> list[pb.ContainerStats]:
        return []


class StandInNode:
    node_ip = "127.0.0.1"
    node_name = NODE

    def __init__(self, log_path: str) -> None:
        self.runtime = StandInRuntime(log_path)

    def find_pod(self, namespace: str, name: str) -> Obj | None:
        return POD if (namespace, name) == ("default", "web") else None

    def list_pods(self) -> list[Obj]:
        return [POD]


class Pki:
    def __init__(self, directory: Path) -> None:
        ca = pki.create_ca("node-ca")
        self.ca_file, _ = pki.write_pair(ca, str(directory), "ca")
        self.serving_cert, self.serving_key = pki.write_pair(
            pki.issue_serving_cert(ca, NODE, ips=["127.0.0.1"]), str(directory), "node")
        self.client_cert, self.client_key = pki.write_pair(
            pki.issue_client_cert(ca, "kube-apiserver-kubelet-client", ["system:masters"]), str(directory), "client")


@pytest.fixture
def certs(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
def node_server(certs: Pki, tmp_path: Path) -> Iterator[int]:
    log_file = tmp_path / "app.log"
    log_file.write_text("2026-01-01T00:00:00.000000000Z stdout F hello over tls\n")
    config = KubeletConfig(node_name=NODE, containerd_socket="/nonexistent.sock", root_dir=str(tmp_path / "root"),
                           tls_cert_file=certs.serving_cert, tls_private_key_file=certs.serving_key,
                           client_ca_file=certs.ca_file)
    port = free_port()
    app = make_app(StandInNode(str(log_file)))  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off", **server_ssl_options(config)))
    thread = threading.Thread(target=server.run, name=f"node-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "node server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def kubelet_tls_flags(certs: Pki) -> dict[str, str]:
    """The API server Config fields of --kubelet-certificate-authority/-client-certificate/-client-key."""
    return {"kubelet_certificate_authority": certs.ca_file, "kubelet_client_certificate": certs.client_cert,
            "kubelet_client_key": certs.client_key}


async def register(api: httpx.AsyncClient, port: int) -> None:
    r = await api.post("/api/v1/nodes", json={"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}})
    assert r.status_code == 201, r.text
    status = {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                         "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}
    r = await api.patch(f"/api/v1/nodes/{NODE}/status", json=status,
                        headers={"content-type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    pod = {k: v for k, v in POD.items() if k != "metadata"} | {"metadata": {"name": "web"}}
    r = await api.post("/api/v1/namespaces/default/pods", json=pod)
    assert r.status_code == 201, r.text


async def test_node_server_requires_a_client_certificate(node_server: int, certs: Pki) -> None:
    url = f"https://127.0.0.1:{node_server}/healthz"
    with_cert = ssl.create_default_context(cafile=certs.ca_file)
    with_cert.load_cert_chain(certs.client_cert, certs.client_key)
    async with httpx.AsyncClient(verify=with_cert) as client:
        assert (await client.get(url)).text == "ok"
    # No client cert: the TLS handshake (TLS 1.3: the first read) is refused.
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=certs.ca_file)) as client:
        with pytest.raises(httpx.HTTPError):
            await client.get(url)
    async with httpx.AsyncClient() as client:  # plain http to a TLS port
        with pytest.raises(httpx.HTTPError):
            await client.get(f"http://127.0.0.1:{node_server}/healthz")


async def test_api_server_proxies_logs_and_metrics_over_tls(node_server: int, certs: Pki, etcd_url: str,
                                                           etcd_prefix: str) -> None:
    with running_apiserver(etcd_url, etcd_prefix, **kubelet_tls_flags(certs)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as api:
            await register(api, node_server)
            r = await api.get("/api/v1/namespaces/default/pods/web/log")
            assert r.status_code == 200, r.text
            assert r.text == "hello over tls\n"
            r = await api.get(f"/apis/metrics.k8s.io/v1beta1/nodes/{NODE}")
            assert r.status_code == 200, r.text
            assert r.json()["usage"]["memory"].endswith("Ki")


async def test_plain_http_proxy_cannot_reach_a_tls_node(node_server: int, etcd_url: str, etcd_prefix: str) -> None:
    # Without --kubelet-* settings the proxy speaks plain http (today's local clusters); a TLS node refuses it.
    with running_apiserver(etcd_url, etcd_prefix) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as api:
            await register(api, node_server)
            r = await api.get("/api/v1/namespaces/default/pods/web/log")
            assert r.status_code in (500, 503), r.text


async def test_proxy_refuses_a_node_whose_certificate_another_ca_signed(node_server: int, certs: Pki, etcd_url: str,
                                                                       etcd_prefix: str, tmp_path: Path) -> None:
    # The API server really verifies the node: trusting only some other CA, it will not talk to this node.
    other_ca, _ = pki.write_pair(pki.create_ca("other-ca"), str(tmp_path), "other-ca")
    flags = kubelet_tls_flags(certs) | {"kubelet_certificate_authority": other_ca}
    with running_apiserver(etcd_url, etcd_prefix, **flags) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as api:
            await register(api, node_server)
            r = await api.get("/api/v1/namespaces/default/pods/web/log")
            assert r.status_code in (500, 503), r.text
            assert "hello over tls" not in r.text
