"""load_kubeconfig: contexts, inline and file credentials, relative paths; ApiClient.from_kubeconfig."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aiokube.client import ApiClient, load_kubeconfig


def self_signed_pem() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aiokube-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def write_config(path: Path, clusters: list[dict], users: list[dict], contexts: list[dict],
                 current: str) -> None:
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": clusters, "users": users,
                                    "contexts": contexts, "current-context": current}))


def test_inline_data_and_current_context(tmp_path: Path) -> None:
    cert, key = self_signed_pem()
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    config = tmp_path / "config"
    write_config(config,
                 [{"name": "c1", "cluster": {"server": "https://10.0.0.1:6443/",
                                             "certificate-authority-data": b64(cert)}}],
                 [{"name": "u1", "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key),
                                          "token": "secret-token"}}],
                 [{"name": "ctx", "context": {"cluster": "c1", "user": "u1", "namespace": "team-a"}}], "ctx")
    loaded = load_kubeconfig(str(config))
    assert loaded.server == "https://10.0.0.1:6443"
    assert loaded.namespace == "team-a"
    assert loaded.ca_data == cert
    assert (loaded.client_cert_data, loaded.client_key_data, loaded.token) == (cert, key, "secret-token")
    context = loaded.ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_files_relative_to_the_config_and_a_named_context(tmp_path: Path) -> None:
    cert, key = self_signed_pem()
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(cert)
    (tmp_path / "pki" / "client.crt").write_bytes(cert)
    (tmp_path / "pki" / "client.key").write_bytes(key)
    (tmp_path / "token").write_text("file-token\n")
    config = tmp_path / "config"
    write_config(config,
                 [{"name": "a", "cluster": {"server": "http://127.0.0.1:1"}},
                  {"name": "b", "cluster": {"server": "https://b:6443", "certificate-authority": "pki/ca.crt"}}],
                 [{"name": "ub", "user": {"client-certificate": "pki/client.crt", "client-key": "pki/client.key",
                                          "tokenFile": "token"}}],
                 [{"name": "first", "context": {"cluster": "a", "user": "ub"}},
                  {"name": "second", "context": {"cluster": "b", "user": "ub"}}], "first")
    loaded = load_kubeconfig(str(config), context="second")
    assert loaded.server == "https://b:6443"
    assert loaded.namespace == "default"
    assert loaded.ca_data == cert and loaded.client_key_data == key
    assert loaded.token == "file-token"
    assert isinstance(loaded.ssl_context(), ssl.SSLContext)


def test_insecure_skip_tls_verify(tmp_path: Path) -> None:
    config = tmp_path / "config"
    write_config(config, [{"name": "c", "cluster": {"server": "https://x", "insecure-skip-tls-verify": True}}],
                 [{"name": "u", "user": {}}], [{"name": "x", "context": {"cluster": "c", "user": "u"}}], "x")
    context = load_kubeconfig(str(config)).ssl_context()
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_NONE


def test_unknown_context_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "config"
    write_config(config, [], [], [], "missing")
    with pytest.raises(ValueError, match="missing"):
        load_kubeconfig(str(config))


async def test_from_kubeconfig_sends_the_bearer_token(tmp_path: Path) -> None:
    config = tmp_path / "config"
    write_config(config, [{"name": "c", "cluster": {"server": "http://api.test"}}],
                 [{"name": "u", "user": {"token": "t0k"}}],
                 [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "ns9"}}], "x")
    headers: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json={"kind": "ConfigMap"})

    async with ApiClient.from_kubeconfig(str(config), transport=httpx.MockTransport(handler)) as client:
        assert client.namespace == "ns9"
        await client.get("configmaps", "c")
    assert headers == ["Bearer t0k"]
