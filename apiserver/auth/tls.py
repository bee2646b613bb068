"""HTTPS serving that tells the app who the client is.

uvicorn (0.54) verifies client certificates when given `ssl_ca_certs` and `ssl_cert_reqs`, but does not hand
the verified certificate to the ASGI app: its scope has no `extensions["tls"]`. `TlsHttpToolsProtocol` (and
`TlsH11Protocol`, for the pure-Python parser) fills that in
as ASGI's TLS extension describes (`client_cert_chain`: PEM strings, leaf first; `client_cert_name`;
`client_cert_error`; `tls_version`). asyncio calls `connection_made` only after the TLS handshake, so the peer
certificate is known there, once per connection; every request on the connection then carries it.

Only the leaf is available: Python 3.11's ssl module does not expose the verified chain. The leaf is what
Kubernetes' x509 authenticator reads (CN = user, O = groups).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# ssl.TLSVersion numbers as the ASGI TLS extension wants them (the TLS wire values).
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(ssl_object: ssl.SSLObject | None) -> dict[str, Any] | None:
    """The ASGI TLS extension of a connection, or None for plain HTTP."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    subject = ""
    if der:
        peer = ssl_object.getpeercert() or {}
        subject = ",".join(f"{pair[0]}={pair[1]}" for rdn in peer.get("subject", ()) for pair in rdn)
    version = ssl_object.version() or ""
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": subject or None,
        # The handshake fails on a certificate that does not verify, so a presented one is always valid.
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version),
        "cipher_suite": None,
    }


def _with_extension(app: ASGIApp, extension: dict[str, Any]) -> ASGIApp:
    async def app_with_tls(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope.setdefault("extensions", {})["tls"] = extension
        await app(scope, receive, send)

    return app_with_tls


class TlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (the fast C parser) plus the ASGI TLS extension in every request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        extension = tls_extension(transport.get_extra_info("ssl_object"))
        if extension is not None:
            self.app = _with_extension(self.app, extension)


class TlsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus the ASGI TLS extension (for where httptools is not available)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        extension = tls_extension(transport.get_extra_info("ssl_object"))
        if extension is not None:
            self.app = _with_extension(self.app, extension)


def client_cert_pem(scope: Scope) -> str | None:
    """The verified client certificate (PEM) of the request, if the client presented one."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return str(chain[0]) if chain else None


def uvicorn_options(*, cert_file: str | None, key_file: str | None, client_ca_file: str | None) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config`: plain HTTP, or HTTPS that asks for (but does not require) a client
    certificate signed by `client_ca_file` — tokens remain a way in, as in Kubernetes. Both use the httptools
    parser (h11, pure Python, costs a sizeable share of a small request's CPU); no X-Forwarded-* handling, as
    the API server trusts no proxy."""
    options: dict[str, Any] = {"http": "httptools", "proxy_headers": False}
    if not cert_file:
        return options
    options.update(http=TlsHttpToolsProtocol, ssl_certfile=cert_file, ssl_keyfile=key_file)
    if client_ca_file:
        options.update(ssl_ca_certs=client_ca_file, ssl_cert_reqs=ssl.CERT_OPTIONAL)
    return options
