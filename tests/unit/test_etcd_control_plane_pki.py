"""deploy/make_control_plane_pki.py's etcd files: where they go, that a second control-plane machine given the
first one's CAs issues its own member certificates under the same etcd CA, and that the files work together
(a TLS etcd member started with them admits the API server's client certificate)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import time
from pathlib import Path
from types import ModuleType

import pytest
from cryptography import x509

from aiokube.cluster import etcd_cluster, etcd_pki
from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.etcd_tls import ClientTlsFiles
from tests.support.etcd import free_port

REPO = Path(__file__).resolve().parents[2]
ETCD_FILES = {"ca.crt", "ca.key", "server.crt", "server.key", "peer.crt", "peer.key", "apiserver-etcd-client.crt",
              "apiserver-etcd-client.key", "healthcheck-client.crt", "healthcheck-client.key"}


def pki_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_control_plane_pki",
                                                  REPO / "deploy" / "make_control_plane_pki.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def ip_sans(certificate: x509.Certificate) -> set[str]:
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}


def test_each_machine_gets_its_member_certificates_under_one_etcd_ca(tmp_path: Path) -> None:
    script = pki_script()
    first, second = tmp_path / "cp1", tmp_path / "cp2"
    script.main(["--ip", "10.0.0.11", "--ip", "10.0.0.12", "--etcd-name", "cp1", "--out", str(first)])
    assert {p.name for p in (first / "pki" / "etcd").iterdir()} == ETCD_FILES
    assert ip_sans(cert(first / "pki" / "etcd" / "server.crt")) == {"10.0.0.11", "127.0.0.1"}  # first --ip

    # As deploy/README.md's HA walkthrough: copy both CAs, then run the script on the next machine.
    for ca_dir in ("pki", "pki/etcd"):
        (second / ca_dir).mkdir(parents=True, exist_ok=True)
        for name in ("ca.crt", "ca.key"):
            shutil.copy(first / ca_dir / name, second / ca_dir / name)
    script.main(["--ip", "10.0.0.11", "--ip", "10.0.0.12", "--etcd-name", "cp2", "--etcd-ip", "10.0.0.12",
                 "--out", str(second)])
    etcd_ca = cert(first / "pki" / "etcd" / "ca.crt")
    assert cert(second / "pki" / "etcd" / "ca.crt") == etcd_ca
    member = cert(second / "pki" / "etcd" / "peer.crt")
    assert ip_sans(member) == {"10.0.0.12", "127.0.0.1"}
    member.verify_directly_issued_by(etcd_ca)
    # The etcd CA is not the cluster CA: cluster certificates do not open etcd.
    assert etcd_ca != cert(first / "pki" / "ca.crt")


@pytest.mark.skipif(shutil.which("etcd") is None, reason="SKIPPED LOUDLY: needs the etcd binary")
async def test_the_files_start_a_tls_member_that_admits_the_apiserver(tmp_path: Path) -> None:
    pki_script().main(["--ip", "127.0.0.1", "--etcd-name", "solo", "--out", str(tmp_path / "out")])
    etcd_dir = str(tmp_path / "out" / "pki" / "etcd")

    def files(name: str) -> tuple[str, str]:
        return os.path.join(etcd_dir, f"{name}.crt"), os.path.join(etcd_dir, f"{name}.key")

    member = etcd_cluster.EtcdMember("solo", "127.0.0.1", client_port=free_port(), peer_port=free_port(), tls=True)
    member_tls = etcd_pki.EtcdMemberTls(os.path.join(etcd_dir, "ca.crt"), *files("server"), *files("peer"))
    process = etcd_cluster.start_member(member, [member], data_dir=str(tmp_path / "data"),
                                        log_path=str(tmp_path / "etcd.log"), tls=member_tls)
    try:
        health = etcd_pki.EtcdClientTls(member_tls.ca_file, *files(etcd_pki.HEALTHCHECK_CLIENT))
        deadline = time.monotonic() + 15
        while etcd_cluster.leader_of([member], client_tls=health) != member:
            assert time.monotonic() < deadline, (tmp_path / "etcd.log").read_text()[-2000:]
            await asyncio.sleep(0.1)
        storage = EtcdStorage([member.client_url], request_timeout=3,
                              tls=ClientTlsFiles(member_tls.ca_file, *files(etcd_pki.APISERVER_CLIENT)))
        await storage.connect()
        try:
            revision = await storage.create("/tls/key", b"value")
            stored = await storage.get("/tls/key")
            assert stored is not None and stored.value == b"value" and stored.mod_revision == revision
        finally:
            await storage.close()
    finally:
        process.stop(timeout=5)
