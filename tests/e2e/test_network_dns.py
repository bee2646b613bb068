"""`python -m clusterdns` against the real API server: answers follow Services and EndpointSlices as they are
created, changed and deleted (normal and headless), and other names go to the configured upstream."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from aiokube.cluster.kubeconfig import write_kubeconfig
from tests.support.apiserver import running_apiserver
from tests.support.etcd import free_port

pytestmark = [pytest.mark.etcd, pytest.mark.timeout(60)]
REPO = Path(__file__).resolve().parents[2]
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


def ask(port: int, name: str, qtype: str = "A", tcp: bool = False) -> DNSRecord:
    return DNSRecord.parse(DNSRecord.question(name, qtype).send("127.0.0.1", port, tcp=tcp, timeout=2))


def a_records(reply: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not within the deadline")
        time.sleep(0.05)


@pytest.fixture
def dns_server(etcd_url: str, etcd_prefix: str, tmp_path: Path) -> Iterator[tuple[int, httpx.Client]]:
    with running_apiserver(etcd_url, etcd_prefix) as server, httpx.Client(base_url=server, timeout=10) as api:
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(str(kubeconfig), server)
        port = free_port()
        # The upstream is a closed loopback port: forwarded names must come back REFUSED, quickly.
        process = subprocess.Popen([sys.executable, "-m", "clusterdns", "--kubeconfig", str(kubeconfig),
                                    "--bind", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{free_port()}"],
                                   cwd=REPO, stderr=subprocess.PIPE, text=True)
        try:
            eventually(lambda: _answers(port), 15)
            yield port, api
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr[-2000:]


def _answers(port: int) -> bool:
    try:
        ask(port, "kubernetes.default.svc.cluster.local")
        return True
    except OSError:
        return False


def test_dns_follows_services_and_endpoint_slices(dns_server: tuple[int, httpx.Client]) -> None:
    port, api = dns_server
    name = "web.default.svc.cluster.local"
    assert ask(port, name).header.rcode == RCODE.NXDOMAIN
    api.post("/api/v1/namespaces/default/services", json={
        "metadata": {"name": "web"}, "spec": {"clusterIP": "10.96.50.5", "ports": [{"name": "http", "port": 80}]}},
    ).raise_for_status()
    eventually(lambda: a_records(ask(port, name)) == ["10.96.50.5"])
    srv = ask(port, "_http._tcp.web.default.svc.cluster.local", "SRV", tcp=True)
    assert srv.rr[0].rdata.port == 80

    api.post("/api/v1/namespaces/default/services", json={
        "metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}},
    ).raise_for_status()
    api.post(SLICES, json={
        "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}}, "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.1.7"], "hostname": "db-0", "conditions": {"ready": True}},
                      {"addresses": ["10.244.2.7"], "hostname": "db-1", "conditions": {"ready": True}}]},
    ).raise_for_status()
    eventually(lambda: a_records(ask(port, "db.default.svc.cluster.local")) == ["10.244.1.7", "10.244.2.7"])
    assert a_records(ask(port, "db-1.db.default.svc.cluster.local")) == ["10.244.2.7"]

    body = api.get(f"{SLICES}/db-1").json()
    body["endpoints"][1]["conditions"]["ready"] = False
    api.put(f"{SLICES}/db-1", json=body).raise_for_status()
    eventually(lambda: a_records(ask(port, "db.default.svc.cluster.local")) == ["10.244.1.7"])

    api.delete("/api/v1/namespaces/default/services/web").raise_for_status()
    eventually(lambda: ask(port, name).header.rcode == RCODE.NXDOMAIN)
    assert ask(port, "www.example.org").header.rcode == RCODE.REFUSED
