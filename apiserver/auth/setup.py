"""From the API server's flags to its security: the ASGI wrapper and uvicorn's TLS options.

    --tls-cert-file/--tls-private-key-file   serve HTTPS with this certificate
    --client-ca-file                         accept client certificates signed by this CA (CN = user, O = groups)
    --token-auth-file                        static bearer tokens (CSV: token,user,uid,"group1,group2")
    --authorization-mode AlwaysAllow|RBAC    RBAC also writes the default policy, applies the node restriction
                                             and the Node authorizer (Kubernetes' Node,RBAC)

With none of these the server stays the open plain-HTTP server used for local development and most tests.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp

from apiserver.auth.authn import StaticTokens
from apiserver.auth.middleware import AuthMiddleware, SecuritySettings, StatefulApp
from apiserver.auth.tls import uvicorn_options
from apiserver.config import Config


def security_enabled(config: Config) -> bool:
    return bool(config.client_ca_file or config.token_auth_file or config.authorization_mode != "AlwaysAllow")


def settings_from(config: Config) -> SecuritySettings:
    tokens = StaticTokens.from_file(config.token_auth_file) if config.token_auth_file else None
    return SecuritySettings(authorization_mode=config.authorization_mode, static_tokens=tokens)


def secure(app: StatefulApp, config: Config) -> ASGIApp:
    """The app behind authentication/authorization when any is configured, else the app itself."""
    if not security_enabled(config):
        return app
    return AuthMiddleware(app, settings_from(config))


def serving_options(config: Config) -> dict[str, Any]:
    """uvicorn.Config keyword arguments for HTTP or HTTPS (with optional client certificates)."""
    if bool(config.tls_cert_file) != bool(config.tls_private_key_file):
        raise ValueError("--tls-cert-file and --tls-private-key-file go together")
    return uvicorn_options(cert_file=config.tls_cert_file, key_file=config.tls_private_key_file,
                           client_ca_file=config.client_ca_file)
