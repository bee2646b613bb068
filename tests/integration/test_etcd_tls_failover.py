"""EtcdStorage over TLS against three real etcd members on loopback addresses (127.0.0.21-23, no root needed):
one gRPC channel listing every https member checks their certificates, fails over when the member it uses
dies, and a client certificate of another CA is refused. The same on separate "machines", with API servers:
tests/e2e/test_ha_control_plane.py."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiokube.cluster import etcd_cluster, etcd_pki, pki
from aiokube.cluster.process import ManagedProcess
from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.etcd_tls import ClientTlsFiles
from apiserver.storage.interface import StorageUnavailableError
from tests.support.etcd import free_port

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="SKIPPED LOUDLY: needs the etcd binary")


@dataclass
class TlsCluster:
    members: list[etcd_cluster.EtcdMember]
    processes: dict[str, ManagedProcess]
    ca: pki.CertKey
    directory: Path

    def client_files(self, name: str = etcd_pki.APISERVER_CLIENT) -> ClientTlsFiles:
        files = etcd_pki.write_client_files(self.ca, str(self.directory / "clients"), name=name)
        return ClientTlsFiles(files.ca_file, files.cert_file, files.key_file)

    def leader(self) -> etcd_cluster.EtcdMember | None:
        health = etcd_pki.write_client_files(self.ca, str(self.directory / "clients"),
                                             name=etcd_pki.HEALTHCHECK_CLIENT)
        return etcd_cluster.leader_of([m for m in self.members if m.name in self.processes], client_tls=health)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[TlsCluster]:
    ca = etcd_pki.load_or_create_etcd_ca(str(tmp_path / "ca"))
    members = [etcd_cluster.EtcdMember(f"m{i}", f"127.0.0.2{i}", client_port=free_port(), peer_port=free_port(),
                                       tls=True) for i in (1, 2, 3)]
    tls_cluster = TlsCluster(members, {}, ca, tmp_path)
    try:
        for member in members:
            files = etcd_pki.write_member_files(ca, str(tmp_path / member.name), name=member.name, ip=member.ip)
            tls_cluster.processes[member.name] = etcd_cluster.start_member(
                member, members, data_dir=str(tmp_path / member.name / "data"),
                log_path=str(tmp_path / f"{member.name}.log"), tls=files)
        deadline = time.monotonic() + 20
        while tls_cluster.leader() is None:
            assert time.monotonic() < deadline, "no etcd leader over TLS"
            time.sleep(0.1)
        yield tls_cluster
    finally:
        for process in tls_cluster.processes.values():
            process.stop(timeout=5)


async def test_one_channel_over_every_https_member_fails_over(cluster: TlsCluster) -> None:
    urls = etcd_cluster.client_urls(cluster.members).split(",")
    storage = EtcdStorage(urls, request_timeout=5, tls=cluster.client_files())
    await storage.connect()
    try:
        first = await storage.create("/failover/a", b"1")
        # pick_first dials the first listed member; lose it (and, if another leads, that one stays up).
        cluster.processes.pop(cluster.members[0].name).stop(timeout=5)
        second = await storage.create("/failover/b", b"2")
        assert second > first
        listed = await storage.list("/failover/")
        assert [(kv.key, kv.value) for kv in listed.items] == [("/failover/a", b"1"), ("/failover/b", b"2")]
    finally:
        await storage.close()


async def test_a_client_certificate_of_another_ca_is_refused(cluster: TlsCluster, tmp_path: Path) -> None:
    stranger_ca = pki.create_ca("someone-else")
    stranger = etcd_pki.write_client_files(stranger_ca, str(tmp_path / "stranger"))
    # Trusts the right CA for the members, but presents a certificate the etcd CA never signed.
    files = ClientTlsFiles(cluster.client_files().ca_file, stranger.cert_file, stranger.key_file)
    storage = EtcdStorage([cluster.members[1].client_url], request_timeout=1, tls=files)
    await storage.connect()
    try:
        with pytest.raises(StorageUnavailableError):
            await storage.get("/anything")
    finally:
        await storage.close()
    log = (tmp_path / f"{cluster.members[1].name}.log").read_text()
    assert "failed to verify client certificate: x509: certificate signed by unknown authority" in log
    # The control: the API server's own certificate gets in at the same member.
    storage = EtcdStorage([cluster.members[1].client_url], request_timeout=5, tls=cluster.client_files())
    await storage.connect()
    try:
        assert await storage.get("/anything") is None
    finally:
        await storage.close()
