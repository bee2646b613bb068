"""apiserver.auth.tls: a real TLS handshake on loopback through uvicorn; the verified client certificate
reaches the ASGI app as scope["extensions"]["tls"], and a certificate from a foreign CA is refused."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from aiokube.cluster import pki
from apiserver.auth.authn import user_from_certificate
from apiserver.auth.tls import client_cert_pem, uvicorn_options
from tests.support.etcd import free_port


async def echo_tls(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the TLS extension the app saw and the identity it names."""
    if scope["type"] != "http":
        return
    pem = client_cert_pem(scope)
    tls = (scope.get("extensions") or {}).get("tls") or {}
    user = user_from_certificate(pem) if pem else None
    body = json.dumps({"chain": len(tls.get("client_cert_chain") or []), "version": tls.get("tls_version"),
                       "user": user.name if user else None, "groups": list(user.groups) if user else [],
                       "scheme": scope.get("scheme")}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, pki.CertKey]]:
    directory = tmp_path_factory.mktemp("tls")
    ca = pki.create_ca()
    pki.write_pair(ca, str(directory), "ca")
    cert, key = pki.write_pair(pki.issue_serving_cert(ca, "server", ips=["127.0.0.1"]), str(directory), "server")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(echo_tls, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning", **uvicorn_options(
                                               cert_file=cert, key_file=key,
                                               client_ca_file=str(directory / "ca.crt"))))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "TLS test server did not start"
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}", directory, ca
    finally:
        server.should_exit = True
        thread.join(10)


def _context(directory: Path, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    if cert:
        context.load_cert_chain(*cert)
    return context


def test_handshake_with_client_cert_puts_identity_in_scope(tls_server: tuple[str, Path, pki.CertKey]) -> None:
    url, directory, ca = tls_server
    cert = pki.write_pair(pki.issue_node_cert(ca, "node-a"), str(directory), "node-a")
    with httpx.Client(verify=_context(directory, cert)) as client:
        first = client.get(url).json()
        second = client.get(url).json()  # same connection, same identity
    assert first == second
    assert first["user"] == "system:node:node-a" and first["groups"] == ["system:nodes"]
    assert first["chain"] == 1 and first["scheme"] == "https" and first["version"] in (0x0303, 0x0304)


def test_handshake_without_client_cert_is_anonymous(tls_server: tuple[str, Path, pki.CertKey]) -> None:
    url, directory, _ = tls_server
    with httpx.Client(verify=_context(directory)) as client:
        answer = client.get(url).json()
    assert answer["user"] is None and answer["chain"] == 0


def test_client_cert_from_another_ca_fails_the_handshake(tls_server: tuple[str, Path, pki.CertKey],
                                                         tmp_path: Path) -> None:
    url, directory, _ = tls_server
    stranger = pki.create_ca("stranger")
    cert = pki.write_pair(pki.issue_admin_cert(stranger), str(tmp_path), "forged-admin")
    with httpx.Client(verify=_context(directory, cert)) as client, pytest.raises(httpx.HTTPError):
        client.get(url)


def test_plain_http_options_when_no_certificate() -> None:
    assert uvicorn_options(cert_file=None, key_file=None, client_ca_file=None) == {"http": "httptools",
                                                                                 "proxy_headers": False}
