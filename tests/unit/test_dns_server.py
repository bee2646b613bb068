"""Cluster DNS over real UDP and TCP sockets on loopback: service A records, headless endpoints, hostnames,
SRV for named ports, ExternalName, PTR, NXDOMAIN/NODATA, forwarding to an upstream (a second server on
loopback standing in for the host resolver), REFUSED without upstream, and TC on oversized UDP answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from clusterdns.records import ZoneIndex, build_index
from clusterdns.resolver import ClusterResolver
from clusterdns.server import DnsServer, read_resolv_conf


def service(name: str, ip: str, *, kind: str = "ClusterIP", **spec: object) -> dict:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": kind, "clusterIP": ip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                     **spec}}


SERVICES = [
    service("web", "10.96.0.20"),
    service("db", "None"),
    {"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName",
                                                                   "externalName": "example.org"}},
    service("many", "None"),
]
SLICES = [
    {"metadata": {"name": "db-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "db"}},
     "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
     "endpoints": [{"addresses": ["10.244.1.7"], "hostname": "db-0", "conditions": {"ready": True}},
                   {"addresses": ["10.244.2.7"], "conditions": {"ready": True}},
                   {"addresses": ["10.244.3.7"], "hostname": "db-2", "conditions": {"ready": False}}]},
    {"metadata": {"name": "many-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "many"}},
     "addressType": "IPv4", "ports": [],
     "endpoints": [{"addresses": [f"10.244.9.{i}"], "conditions": {"ready": True}} for i in range(1, 61)]},
]


def query(port: int, name: str, qtype: str = "A", *, tcp: bool = False) -> DNSRecord:
    """A blocking client query (dnslib's own socket code), run in a thread so the server keeps serving."""
    packet = DNSRecord.question(name, qtype).send("127.0.0.1", port, tcp=tcp, timeout=3)
    return DNSRecord.parse(packet)


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    """A second server authoritative for example.org: the 'host resolver' the cluster DNS forwards to."""
    outside = ZoneIndex(zone="example.org", a={"www.example.org": ["127.0.0.9"]})
    server = DnsServer(ClusterResolver(lambda: outside), [])
    port = await server.start("127.0.0.1", 0)
    yield port
    await server.close()


@pytest.fixture
async def dns(upstream: int) -> AsyncIterator[int]:
    index = build_index(SERVICES, SLICES, "cluster.local")
    server = DnsServer(ClusterResolver(lambda: index), [("127.0.0.1", upstream)], forward_timeout=1.0)
    port = await server.start("127.0.0.1", 0)
    yield port
    await server.close()


def a_records(reply: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)


async def ask(port: int, name: str, qtype: str = "A", *, tcp: bool = False) -> DNSRecord:
    return await asyncio.to_thread(query, port, name, qtype, tcp=tcp)


async def test_service_a_record_over_udp_and_tcp(dns: int) -> None:
    for tcp in (False, True):
        reply = await ask(dns, "web.default.svc.cluster.local", tcp=tcp)
        assert reply.header.rcode == RCODE.NOERROR and a_records(reply) == ["10.96.0.20"]
        assert reply.rr[0].ttl == 5


async def test_headless_service_answers_ready_endpoints_and_hostnames(dns: int) -> None:
    reply = await ask(dns, "db.default.svc.cluster.local")
    assert a_records(reply) == ["10.244.1.7", "10.244.2.7"]  # the not-ready db-2 is left out
    assert a_records(await ask(dns, "db-0.db.default.svc.cluster.local")) == ["10.244.1.7"]
    assert a_records(await ask(dns, "10-244-2-7.db.default.svc.cluster.local")) == ["10.244.2.7"]
    assert (await ask(dns, "db-2.db.default.svc.cluster.local")).header.rcode == RCODE.NXDOMAIN


async def test_srv_for_named_ports(dns: int) -> None:
    reply = await ask(dns, "_http._tcp.web.default.svc.cluster.local", "SRV")
    [srv] = reply.rr
    assert (srv.rdata.port, str(srv.rdata.target)) == (80, "web.default.svc.cluster.local.")
    headless = await ask(dns, "_pg._tcp.db.default.svc.cluster.local", "SRV")
    assert sorted(str(rr.rdata.target) for rr in headless.rr) == [
        "10-244-2-7.db.default.svc.cluster.local.", "db-0.db.default.svc.cluster.local."]
    assert {rr.rdata.port for rr in headless.rr} == {5432}
    assert sorted(str(rr.rdata) for rr in headless.ar) == ["10.244.1.7", "10.244.2.7"]


async def test_external_name_ptr_pod_names(dns: int) -> None:
    reply = await ask(dns, "ext.default.svc.cluster.local")
    assert reply.rr[0].rtype == QTYPE.CNAME and str(reply.rr[0].rdata) == "example.org."
    ptr = await ask(dns, "20.0.96.10.in-addr.arpa", "PTR")
    assert str(ptr.rr[0].rdata) == "web.default.svc.cluster.local."
    assert a_records(await ask(dns, "10-244-1-5.default.pod.cluster.local")) == ["10.244.1.5"]


async def test_nxdomain_and_nodata_inside_the_zone(dns: int) -> None:
    missing = await ask(dns, "nope.default.svc.cluster.local")
    assert missing.header.rcode == RCODE.NXDOMAIN and missing.auth[0].rtype == QTYPE.SOA
    nodata = await ask(dns, "web.default.svc.cluster.local", "AAAA")
    assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr
    parent = await ask(dns, "default.svc.cluster.local")
    assert parent.header.rcode == RCODE.NOERROR and not parent.rr


async def test_other_names_are_forwarded_upstream(dns: int) -> None:
    reply = await ask(dns, "www.example.org")
    assert a_records(reply) == ["127.0.0.9"]
    assert a_records(await ask(dns, "www.example.org", tcp=True)) == ["127.0.0.9"]


async def test_refused_without_a_reachable_upstream(tmp_path: object) -> None:
    index = build_index(SERVICES, SLICES)
    server = DnsServer(ClusterResolver(lambda: index), [], forward_timeout=0.2)
    port = await server.start("127.0.0.1", 0)
    try:
        assert (await ask(port, "www.example.org")).header.rcode == RCODE.REFUSED
    finally:
        await server.close()


async def test_large_udp_answers_are_truncated_and_whole_over_tcp(dns: int) -> None:
    udp = await ask(dns, "many.default.svc.cluster.local")
    assert udp.header.tc == 1
    tcp = await ask(dns, "many.default.svc.cluster.local", tcp=True)
    assert tcp.header.tc == 0 and len(a_records(tcp)) == 60


def test_resolv_conf_parsing(tmp_path: object) -> None:
    import pathlib
    path = pathlib.Path(str(tmp_path)) / "resolv.conf"
    path.write_text("search example.org\nnameserver 127.0.0.53\noptions edns0\nnameserver 10.0.0.2\n")
    assert read_resolv_conf(str(path)) == [("127.0.0.53", 53), ("10.0.0.2", 53)]
    assert read_resolv_conf(str(path) + ".missing") == []
