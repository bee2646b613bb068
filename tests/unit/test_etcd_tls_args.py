"""etcd over TLS, without running etcd: the member command lines (aiokube/cluster/etcd_cluster.py), the etcd
PKI (aiokube/cluster/etcd_pki.py), the API server's --etcd-cafile/--etcd-certfile/--etcd-keyfile and the TLS
target of EtcdStorage (apiserver/storage/etcd.py, etcd_tls.py)."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from aiokube.cluster import etcd_cluster, etcd_pki, pki
from apiserver.config import parse_args
from apiserver.storage.etcd import EtcdStorage, grpc_target
from apiserver.storage.etcd_tls import ClientTlsFiles, secure_options


def tls_members() -> list[etcd_cluster.EtcdMember]:
    return [etcd_cluster.EtcdMember(f"cp{i}", f"10.0.0.1{i}", tls=True) for i in (1, 2, 3)]


def member_files(directory: str) -> etcd_pki.EtcdMemberTls:
    return etcd_pki.EtcdMemberTls(f"{directory}/ca.crt", f"{directory}/server.crt", f"{directory}/server.key",
                                  f"{directory}/peer.crt", f"{directory}/peer.key")


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# --- member command lines -------------------------------------------------------------------------------------

def test_tls_member_uses_https_everywhere_and_requires_client_certificates() -> None:
    members = tls_members()
    argv = etcd_cluster.member_argv(members[1], members, data_dir="/d", tls=member_files("/pki"))
    assert flag(argv, "--listen-client-urls") == "https://10.0.0.12:2379,https://127.0.0.1:2379"
    assert flag(argv, "--advertise-client-urls") == "https://10.0.0.12:2379"
    assert flag(argv, "--listen-peer-urls") == "https://10.0.0.12:2380"
    assert flag(argv, "--initial-advertise-peer-urls") == "https://10.0.0.12:2380"
    assert flag(argv, "--initial-cluster") == \
        "cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380,cp3=https://10.0.0.13:2380"
    assert flag(argv, "--cert-file") == "/pki/server.crt" and flag(argv, "--key-file") == "/pki/server.key"
    assert flag(argv, "--peer-cert-file") == "/pki/peer.crt" and flag(argv, "--peer-key-file") == "/pki/peer.key"
    assert flag(argv, "--trusted-ca-file") == flag(argv, "--peer-trusted-ca-file") == "/pki/ca.crt"
    assert "--client-cert-auth" in argv and "--peer-client-cert-auth" in argv
    assert not any(a.startswith("http://") or ",http://" in a for a in argv)


def test_plain_member_keeps_http_and_no_tls_flags() -> None:
    members = [etcd_cluster.EtcdMember("solo", "127.0.0.1")]
    argv = etcd_cluster.member_argv(members[0], members, data_dir="/d")
    assert flag(argv, "--listen-client-urls") == "http://127.0.0.1:2379"
    assert not [a for a in argv if "cert" in a or "trusted-ca" in a]
    assert etcd_cluster.client_urls(members) == "http://127.0.0.1:2379"


def test_tls_files_go_exactly_with_https_members() -> None:
    members = tls_members()
    with pytest.raises(ValueError, match="TLS files"):
        etcd_cluster.member_argv(members[0], members, data_dir="/d")
    plain = [etcd_cluster.EtcdMember(m.name, m.ip) for m in members]
    with pytest.raises(ValueError, match="TLS files"):
        etcd_cluster.member_argv(plain[0], plain, data_dir="/d", tls=member_files("/pki"))
    mixed = [members[0], *plain[1:]]
    with pytest.raises(ValueError, match="same scheme"):
        etcd_cluster.member_argv(members[0], mixed, data_dir="/d", tls=member_files("/pki"))


def test_client_urls_of_tls_members_are_https() -> None:
    assert etcd_cluster.client_urls(tls_members()) == \
        "https://10.0.0.11:2379,https://10.0.0.12:2379,https://10.0.0.13:2379"


# --- the etcd PKI ---------------------------------------------------------------------------------------------

def sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (set(names.get_values_for_type(x509.DNSName)),
            {str(ip) for ip in names.get_values_for_type(x509.IPAddress)})


def usages(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def load(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def test_member_certificates_name_the_member_loopback_and_localhost(tmp_path) -> None:
    ca = etcd_pki.load_or_create_etcd_ca(str(tmp_path / "ca"))
    files = etcd_pki.write_member_files(ca, str(tmp_path / "cp2"), name="cp2", ip="10.0.0.12")
    for cert_file in (files.cert_file, files.peer_cert_file):
        cert = load(cert_file)
        assert sans(cert) == ({"cp2", "localhost"}, {"10.0.0.12", "127.0.0.1"})
        # Members serve and also dial each other (and etcd's gateway dials itself) with these certificates.
        assert usages(cert) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert cert.issuer == ca.cert.subject
        cert.verify_directly_issued_by(ca.cert)
    assert load(files.ca_file) == ca.cert
    # The member's directory gets the CA certificate, never the CA key; private keys are 0600.
    assert sorted(os.listdir(tmp_path / "cp2")) == ["ca.crt", "peer.crt", "peer.key", "server.crt", "server.key"]
    assert stat.S_IMODE(os.stat(files.key_file).st_mode) == 0o600


def test_etcd_ca_is_its_own_and_kept_across_runs(tmp_path) -> None:
    first = etcd_pki.load_or_create_etcd_ca(str(tmp_path))
    again = etcd_pki.load_or_create_etcd_ca(str(tmp_path))
    assert first.cert == again.cert
    assert pki.identity_of(first.cert)[0] == etcd_pki.CA_COMMON_NAME


def test_apiserver_client_certificate_is_client_only(tmp_path) -> None:
    ca = etcd_pki.load_or_create_etcd_ca(str(tmp_path / "ca"))
    files = etcd_pki.write_client_files(ca, str(tmp_path / "apiserver"))
    cert = load(files.cert_file)
    assert usages(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}  # so it can never pass as a member
    assert pki.identity_of(cert) == (etcd_pki.APISERVER_CLIENT_CN, [])
    assert os.path.basename(files.cert_file) == "apiserver-etcd-client.crt"
    assert load(files.ca_file) == ca.cert


# --- the API server's side -------------------------------------------------------------------------------------

def test_apiserver_etcd_tls_flags() -> None:
    config = parse_args(["--etcd-servers", "https://10.0.0.11:2379,https://10.0.0.12:2379",
                         "--etcd-cafile", "/p/ca.crt", "--etcd-certfile", "/p/c.crt", "--etcd-keyfile", "/p/c.key"])
    assert config.etcd_servers == ("https://10.0.0.11:2379", "https://10.0.0.12:2379")
    assert (config.etcd_cafile, config.etcd_certfile, config.etcd_keyfile) == ("/p/ca.crt", "/p/c.crt", "/p/c.key")
    assert parse_args([]).etcd_cafile is None


def test_apiserver_etcd_tls_flags_go_together() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--etcd-cafile", "/p/ca.crt"])


def test_grpc_target_with_tls_takes_https_endpoints_only() -> None:
    assert grpc_target(["https://10.0.0.11:2379"], secure=True) == ("10.0.0.11", 2379)
    assert grpc_target(["https://10.0.0.11:1", "https://10.0.0.12:2"], secure=True) == \
        ("ipv4:10.0.0.11:1,10.0.0.12", 2)
    with pytest.raises(ValueError, match="every endpoint is https"):
        grpc_target(["https://10.0.0.11:1", "http://10.0.0.12:2"], secure=True)
    with pytest.raises(ValueError, match="needs --etcd-cafile"):
        grpc_target(["https://10.0.0.11:2379"])


def test_shared_member_name_is_checked_only_when_one_channel_dials_several_members() -> None:
    assert secure_options({"a": 1}, multi_address=False) == {"a": 1}
    assert secure_options({"a": 1}, multi_address=True) == \
        {"a": 1, "grpc.ssl_target_name_override": etcd_pki.SHARED_MEMBER_NAME}


async def test_missing_tls_file_fails_at_connect_naming_it(tmp_path) -> None:
    missing = str(tmp_path / "nope.crt")
    storage = EtcdStorage(["https://127.0.0.1:2379"], tls=ClientTlsFiles(missing, missing, missing))
    with pytest.raises(FileNotFoundError, match=r"nope\.crt"):
        await storage.connect()
