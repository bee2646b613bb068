"""apiserver.auth.authn: client certificates, the static token file and bootstrap tokens."""

from __future__ import annotations

import base64
import datetime
import logging

import pytest

from aiokube.cluster import pki
from apiserver.auth.authn import AuthenticationError, Authenticator, StaticTokens, bootstrap_user

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
TOKEN_FILE = '''
# comment lines and blank lines are skipped
secret-admin,admin,1,"system:masters"
secret-bob,bob,2,"dev,ops"
secret-nogroups,carol,3
'''


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def bootstrap_secret(token_id: str = "abcdef", secret: str = "0123456789abcdef", *,
                     expiration: str | None = None, extra_groups: str = "", usage: str = "true") -> dict:
    data = {"token-id": b64(token_id), "token-secret": b64(secret), "usage-bootstrap-authentication": b64(usage)}
    if expiration:
        data["expiration"] = b64(expiration)
    if extra_groups:
        data["auth-extra-groups"] = b64(extra_groups)
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"}, "data": data}


def test_static_token_file_parsing() -> None:
    tokens = StaticTokens.parse(TOKEN_FILE)
    assert len(tokens) == 3
    bob = tokens.lookup("secret-bob")
    assert bob is not None and (bob.name, bob.uid, bob.groups) == ("bob", "2", ("dev", "ops"))
    carol = tokens.lookup("secret-nogroups")
    assert carol is not None and carol.groups == ()
    assert tokens.lookup("secret-bo") is None
    with pytest.raises(ValueError, match="line 1"):
        StaticTokens.parse("onlytoken,user")


async def test_authenticator_chain(caplog: pytest.LogCaptureFixture) -> None:
    auth = Authenticator(static_tokens=StaticTokens.parse(TOKEN_FILE))
    user = await auth.authenticate(None, "Bearer secret-bob")
    assert user is not None and user.name == "bob"
    assert user.groups == ("dev", "ops", "system:authenticated")
    assert await auth.authenticate(None, None) is None
    assert await auth.authenticate(None, "Basic Zm9vOmJhcg==") is None  # not a bearer credential
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError) as raised:
        await auth.authenticate(None, "Bearer wrong-secret-value")
    assert "wrong-secret-value" not in str(raised.value) and "wrong-secret-value" not in caplog.text


async def test_client_certificate_wins_over_token() -> None:
    ca = pki.create_ca()
    node = pki.issue_node_cert(ca, "node-a")
    auth = Authenticator(static_tokens=StaticTokens.parse(TOKEN_FILE))
    user = await auth.authenticate(node.cert_pem.decode(), "Bearer secret-admin")
    assert user is not None and user.name == "system:node:node-a" and user.node_name == "node-a"
    assert user.groups == ("system:nodes", "system:authenticated")


def test_bootstrap_token_rules() -> None:
    user = bootstrap_user(bootstrap_secret(extra_groups="system:bootstrappers:worker,not-allowed"),
                          "abcdef", "0123456789abcdef", NOW)
    assert user is not None and user.name == "system:bootstrap:abcdef"
    assert user.groups == ("system:bootstrappers", "system:bootstrappers:worker")
    assert bootstrap_user(bootstrap_secret(), "abcdef", "0123456789abcdeX", NOW) is None
    assert bootstrap_user(bootstrap_secret(usage="false"), "abcdef", "0123456789abcdef", NOW) is None
    expired = bootstrap_secret(expiration="2025-12-31T23:59:59Z")
    assert bootstrap_user(expired, "abcdef", "0123456789abcdef", NOW) is None
    valid = bootstrap_secret(expiration="2026-01-02T00:00:00Z")
    assert bootstrap_user(valid, "abcdef", "0123456789abcdef", NOW) is not None
    opaque = dict(bootstrap_secret(), type="Opaque")
    assert bootstrap_user(opaque, "abcdef", "0123456789abcdef", NOW) is None


async def test_bootstrap_token_through_the_authenticator() -> None:
    reads: list[tuple[str, str]] = []

    async def read_secret(namespace: str, name: str) -> dict | None:
        reads.append((namespace, name))
        return bootstrap_secret() if name == "bootstrap-token-abcdef" else None

    auth = Authenticator(read_secret=read_secret, clock=lambda: NOW)
    user = await auth.authenticate(None, "Bearer abcdef.0123456789abcdef")
    assert user is not None and user.name == "system:bootstrap:abcdef"
    assert reads == [("kube-system", "bootstrap-token-abcdef")]
    with pytest.raises(AuthenticationError):
        await auth.authenticate(None, "Bearer zzzzzz.0123456789abcdef")  # no such Secret
