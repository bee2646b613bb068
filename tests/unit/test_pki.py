"""aiokube.cluster.pki: CA, serving and client certificates, files, kubeconfig data and the CA hash."""

from __future__ import annotations

import base64
import ipaddress
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from aiokube.cluster import pki


@pytest.fixture(scope="module")
def ca() -> pki.CertKey:
    return pki.create_ca("test-ca")


def test_ca_is_a_self_signed_ca(ca: pki.CertKey) -> None:
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    ca.cert.verify_directly_issued_by(ca.cert)
    assert ca.cert.subject == ca.cert.issuer


def test_serving_cert_names_and_chain(ca: pki.CertKey) -> None:
    serving = pki.issue_serving_cert(ca, "kube-apiserver", dns_names=["kubernetes", "localhost"],
                                     ips=["127.0.0.1", "10.96.0.1"])
    serving.cert.verify_directly_issued_by(ca.cert)
    sans = serving.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["kubernetes", "localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                         ipaddress.ip_address("10.96.0.1")]
    usages = serving.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    with pytest.raises(ValueError):
        pki.issue_serving_cert(ca, "nameless")


def test_client_certs_follow_kubernetes_conventions(ca: pki.CertKey) -> None:
    node = pki.issue_node_cert(ca, "node-a")
    assert pki.identity_of(node.cert) == ("system:node:node-a", ["system:nodes"])
    assert pki.identity_of(pki.issue_admin_cert(ca).cert) == ("kubernetes-admin", ["system:masters"])
    multi = pki.issue_client_cert(ca, "jane", ["dev", "ops"])
    assert pki.identity_of(multi.cert) == ("jane", ["dev", "ops"])
    usages = multi.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    multi.cert.verify_directly_issued_by(ca.cert)


def test_files_round_trip_with_private_keys_0600(ca: pki.CertKey, tmp_path: Path) -> None:
    cert_path, key_path = pki.write_pair(ca, str(tmp_path / "pki"), "ca")
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cert_path).st_mode) == 0o644
    loaded = pki.load_pair(str(tmp_path / "pki"), "ca")
    assert loaded.cert == ca.cert and loaded.key_pem == ca.key_pem
    again = pki.load_or_create_ca(str(tmp_path / "pki"))
    assert again.cert == ca.cert  # an existing CA is kept across restarts
    fresh = pki.load_or_create_ca(str(tmp_path / "other"))
    assert fresh.cert != ca.cert and os.path.exists(tmp_path / "other" / "ca.key")


def test_kubeconfig_data_is_base64_pem(ca: pki.CertKey) -> None:
    client = pki.issue_admin_cert(ca)
    assert base64.b64decode(client.cert_data).startswith(b"-----BEGIN CERTIFICATE-----")
    assert base64.b64decode(client.key_data).startswith(b"-----BEGIN PRIVATE KEY-----")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed: no independent oracle")
def test_ca_cert_hash_matches_kubeadm_recipe(ca: pki.CertKey, tmp_path: Path) -> None:
    # kubeadm's documented recipe: openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256
    cert_path, _ = pki.write_pair(ca, str(tmp_path), "ca")
    pubkey = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", cert_path], check=True,
                            capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pubkey, check=True,
                         capture_output=True).stdout
    import hashlib

    assert pki.ca_cert_hash(ca.cert) == "sha256:" + hashlib.sha256(der).hexdigest()
    assert len(pki.ca_cert_hash(ca.cert)) == len("sha256:") + 64
