"""Authentication: turn a request's credentials into a UserInfo.

    x509        the verified TLS client certificate: CN = user, each O = a group
    tokens      `Authorization: Bearer <token>` looked up in the static token file (--token-auth-file), then
                as a bootstrap token `<id>.<secret>` (Secret `bootstrap-token-<id>` in kube-system)

Outcomes: a UserInfo; None when the request carries no credentials at all (the caller answers 401 unless the
path is public); `AuthenticationError` when it carries credentials that do not check out (always 401: a client
that sent a bad token must learn it, not be served as anonymous). Tokens never reach a log or an error message.
"""

from __future__ import annotations

import base64
import csv
import datetime
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from functools import lru_cache

from cryptography import x509
from cryptography.x509.oid import NameOID

from apiserver.auth.user import BOOTSTRAPPERS, UserInfo

log = logging.getLogger(__name__)

BOOTSTRAP_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
BOOTSTRAP_SECRET_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAP_SECRET_PREFIX = "bootstrap-token-"
BOOTSTRAP_GROUP_PATTERN = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")

# Reads a Secret by (namespace, name); injected so the authenticator needs no storage of its own.
SecretReader = Callable[[str, str], Awaitable[dict[str, object] | None]]


class AuthenticationError(Exception):
    """Credentials were presented and are invalid. The message is for the server log and never holds them."""


@lru_cache(maxsize=1024)
def user_from_certificate(pem: str) -> UserInfo:
    """CN and O of a client certificate the TLS layer already verified (cached: same cert per connection)."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not common_names or not str(common_names[0].value):
        raise AuthenticationError("client certificate has no common name")
    groups = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return UserInfo(str(common_names[0].value), groups=groups)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class StaticTokens:
    """The --token-auth-file: CSV lines `token,user,uid[,"group1,group2"]`. Only token digests are kept."""

    def __init__(self, users_by_digest: dict[bytes, UserInfo]) -> None:
        self._users = users_by_digest

    @classmethod
    def from_file(cls, path: str) -> StaticTokens:
        with open(path, newline="") as f:
            return cls.parse(f.read(), source=path)

    @classmethod
    def parse(cls, text: str, *, source: str = "token file") -> StaticTokens:
        users: dict[bytes, UserInfo] = {}
        for number, row in enumerate(csv.reader(text.splitlines()), start=1):
            if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
                continue
            if len(row) < 3:
                raise ValueError(f"{source}, line {number}: want at least 3 columns (token,user,uid), "
                                 f"found {len(row)}")
            token, name, uid = row[0].strip(), row[1].strip(), row[2].strip()
            if not token or not name:
                raise ValueError(f"{source}, line {number}: empty token or user name")
            groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
            digest = _digest(token)
            if digest in users:
                log.warning("%s, line %d: duplicate token (user %s); the later line wins", source, number, name)
            users[digest] = UserInfo(name, uid, groups)
        return cls(users)

    def lookup(self, token: str) -> UserInfo | None:
        # A dict lookup keyed by a digest: timing reveals nothing usable about the stored tokens.
        return self._users.get(_digest(token))

    def __len__(self) -> int:
        return len(self._users)


def _secret_value(data: dict[str, object], key: str) -> str:
    raw = data.get(key)
    if not isinstance(raw, str):
        return ""
    try:
        return base64.b64decode(raw).decode()
    except ValueError:
        return ""


def bootstrap_user(secret: dict[str, object], token_id: str, token_secret: str,
                   now: datetime.datetime) -> UserInfo | None:
    """The identity a bootstrap-token Secret grants for `<token_id>.<token_secret>`, or None if it does not."""
    if secret.get("type") != BOOTSTRAP_SECRET_TYPE:
        return None
    meta = secret.get("metadata")
    if isinstance(meta, dict) and meta.get("deletionTimestamp"):
        return None
    data = secret.get("data")
    if not isinstance(data, dict):
        return None
    if _secret_value(data, "token-id") != token_id:
        return None
    if not hmac.compare_digest(_secret_value(data, "token-secret").encode(), token_secret.encode()):
        return None
    if _secret_value(data, "usage-bootstrap-authentication") != "true":
        return None
    expiration = _secret_value(data, "expiration")
    if expiration:
        try:
            expires = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
        except ValueError:
            return None
        if expires.tzinfo is None or now >= expires:
            return None
    groups = [BOOTSTRAPPERS]
    for group in _secret_value(data, "auth-extra-groups").split(","):
        group = group.strip()
        if group and BOOTSTRAP_GROUP_PATTERN.match(group) and group not in groups:
            groups.append(group)
    return UserInfo(f"system:bootstrap:{token_id}", groups=tuple(groups))


class Authenticator:
    """The chain: client certificate first, then bearer tokens (static, then bootstrap)."""

    def __init__(self, *, static_tokens: StaticTokens | None = None, read_secret: SecretReader | None = None,
                 clock: Callable[[], datetime.datetime] | None = None) -> None:
        self.static_tokens = static_tokens
        self.read_secret = read_secret
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))

    async def authenticate(self, client_cert_pem: str | None, authorization: str | None) -> UserInfo | None:
        # Kubernetes' union authenticator asks x509 before tokens: a verified certificate wins.
        if client_cert_pem:
            return user_from_certificate(client_cert_pem).with_authenticated_group()
        if authorization:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return (await self._token_user(token.strip())).with_authenticated_group()
        return None

    async def _token_user(self, token: str) -> UserInfo:
        if self.static_tokens is not None:
            user = self.static_tokens.lookup(token)
            if user is not None:
                return user
        match = BOOTSTRAP_TOKEN.match(token)
        if match and self.read_secret is not None:
            token_id, token_secret = match.groups()
            # Bootstrap tokens authenticate a node once while it joins: a direct read of the one Secret
            # beats caching every Secret of the cluster in the API server's memory.
            secret = await self.read_secret("kube-system", BOOTSTRAP_SECRET_PREFIX + token_id)
            if secret is not None:
                user = bootstrap_user(secret, token_id, token_secret, self._clock())
                if user is not None:
                    return user
            raise AuthenticationError(f"invalid bootstrap token (id {token_id})")
        raise AuthenticationError("invalid bearer token")


def read_secret_from_storage(storage_get: Callable[[str], Awaitable[bytes | None]],
                             key_for: Callable[[str, str], str]) -> SecretReader:
    """A SecretReader over raw storage: `storage_get(key)` returns the stored JSON bytes or None."""

    async def read(namespace: str, name: str) -> dict[str, object] | None:
        raw = await storage_get(key_for(namespace, name))
        if raw is None:
            return None
        decoded = json.loads(raw)
        return decoded if isinstance(decoded, dict) else None

    return read
