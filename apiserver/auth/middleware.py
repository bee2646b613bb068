"""The ASGI layer in front of the API server app: authenticate, authorize, apply the node restriction.

    401 Unauthorized   invalid credentials, or none on a path that is not public
    403 Forbidden      neither the Node authorizer nor RBAC allowed the request, or a node wrote another
                       node's objects

With RBAC on, the Node authorizer runs first (Kubernetes' `--authorization-mode=Node,RBAC`, which is what
"RBAC" means here): a node reads only the Secrets/ConfigMaps/PVCs its own pods reference.

Public paths (/healthz, /livez, /readyz, /version) are served without credentials, as Kubernetes' default
anonymous access plus its system:public-info-viewer binding do; everything else needs a credential.

The layer wraps the app's lifespan: once the app has started (storage connected) it writes the default RBAC
policy and fills the policy caches and the node graph, and only then reports startup complete, so the first
request is already authorized against a complete policy. It needs nothing from the app but its `state` after startup.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiokube.api.errors import ApiError, status_for
from aiokube.api.types import Obj
from apiserver.auth import node_restriction
from apiserver.auth.attributes import Attributes, request_attributes
from apiserver.auth.authn import AuthenticationError, Authenticator, StaticTokens, read_secret_from_storage
from apiserver.auth.node_authorizer import NodeAuthorizer, NodeThenRBAC
from apiserver.auth.node_graph import WatchedNodeGraph
from apiserver.auth.policy import CachedPolicy, ensure_default_policy
from apiserver.auth.rbac import RBACAuthorizer, forbidden_message
from apiserver.auth.tls import client_cert_pem
from apiserver.auth.user import UNAUTHENTICATED, UserInfo
from apiserver.handlers.state import ServerState

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
# Reachable without credentials but still subject to authorization (RBAC decides, as for system:anonymous in
# Kubernetes): the cluster-info ConfigMap that `aiokube join` reads before it trusts or authenticates anything.
ANONYMOUS_AUTHORIZED_PATHS = frozenset({"/api/v1/namespaces/kube-public/configmaps/cluster-info"})
ANONYMOUS = UserInfo("system:anonymous", groups=(UNAUTHENTICATED,))
AUTHORIZATION_MODES = ("AlwaysAllow", "RBAC")


class StatefulApp(Protocol):
    """The wrapped app: an ASGI app whose `state` is set once its lifespan startup completed."""

    state: ServerState | None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


@dataclass(frozen=True)
class SecuritySettings:
    authorization_mode: str = "AlwaysAllow"
    static_tokens: StaticTokens | None = None
    # Bootstrap tokens are read from Secrets only when enabled (Kubernetes: --enable-bootstrap-token-auth).
    bootstrap_tokens: bool = True

    def __post_init__(self) -> None:
        if self.authorization_mode not in AUTHORIZATION_MODES:
            raise ValueError(f"--authorization-mode must be one of {', '.join(AUTHORIZATION_MODES)}, "
                             f"not {self.authorization_mode!r}")

    @property
    def rbac(self) -> bool:
        return self.authorization_mode == "RBAC"


def _status_response(code: int, message: str, details: dict[str, Any] | None = None) -> tuple[int, bytes]:
    return code, orjson.dumps(status_for(code, message, None, details))


async def _send_json(send: Send, code: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-cache, private")]})
    await send({"type": "http.response.body", "body": body})


def _forbidden(user: UserInfo, attrs: Attributes, message: str) -> tuple[int, bytes]:
    details: dict[str, Any] = {}
    if attrs.resource_request:
        details = {"group": attrs.api_group, "kind": attrs.resource}
        if attrs.name:
            details["name"] = attrs.name
    return _status_response(403, message, details or None)


class AuthMiddleware:
    def __init__(self, app: StatefulApp, settings: SecuritySettings) -> None:
        self.app = app
        self.settings = settings
        self.policy: CachedPolicy | None = None
        self.node_graph: WatchedNodeGraph | None = None
        self.authorizer: NodeThenRBAC | None = None
        self.authenticator = Authenticator(static_tokens=settings.static_tokens)

    # --- lifespan ----------------------------------------------------------------------------------------------
    async def _start(self) -> None:
        state = self.app.state
        if state is None:
            raise RuntimeError("the API server reported startup without state")
        if self.settings.bootstrap_tokens:
            secrets = state.registry.handle("secrets")

            async def stored(key: str) -> bytes | None:
                kv = await secrets.storage.get(key)
                return kv.value if kv is not None else None

            self.authenticator.read_secret = read_secret_from_storage(stored, secrets.key)
        if self.settings.rbac:
            await ensure_default_policy(state)
            self.policy = CachedPolicy(state)
            await self.policy.start()
            pods = state.registry.handle("pods")
            self.node_graph = WatchedNodeGraph(pods.storage, pods.root, pods.watch_cache)
            await self.node_graph.start()
            self.authorizer = NodeThenRBAC(NodeAuthorizer(self.node_graph), RBACAuthorizer(self.policy))
        log.info("authorization mode %s; static tokens: %d", self.settings.authorization_mode,
                 len(self.settings.static_tokens or ()))

    async def _stop(self) -> None:
        if self.policy is not None:
            await self.policy.stop()
        if self.node_graph is not None:
            await self.node_graph.stop()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_after_our_startup(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                try:
                    await self._start()
                except Exception as exc:
                    log.exception("security setup failed")
                    await send({"type": "lifespan.startup.failed", "message": f"security setup failed: {exc}"})
                    return
            await send(message)

        async def receive_stopping_first() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self._stop()
            return message

        await self.app(scope, receive_stopping_first, send_after_our_startup)

    # --- requests ----------------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # the app refuses websockets itself
            return
        if self.app.state is None:  # still starting: let the app answer its 503
            await self.app(scope, receive, send)
            return
        denial, user, receive = await self._check(scope, receive)
        if denial is not None:
            await _send_json(send, *denial)
            return
        scope["user"] = user
        await self.app(scope, receive, send)

    async def _check(self, scope: Scope, receive: Receive) -> tuple[tuple[int, bytes] | None, UserInfo, Receive]:
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        headers = {k: v for k, v in scope["headers"] if k in (b"authorization", b"content-type")}
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        try:
            user = await self.authenticator.authenticate(client_cert_pem(scope), authorization)
        except AuthenticationError as exc:
            client = scope.get("client") or ("?", 0)
            log.info("unauthorized request from %s: %s", client[0], exc)  # the message never holds the token
            return _status_response(401, "Unauthorized"), ANONYMOUS, receive
        if user is None:
            if path not in PUBLIC_PATHS and not (path in ANONYMOUS_AUTHORIZED_PATHS and scope["method"] == "GET"):
                return _status_response(401, "Unauthorized"), ANONYMOUS, receive
            user = ANONYMOUS
        attrs = request_attributes(scope["method"], path, scope.get("query_string", b""))
        if self.authorizer is None:  # AlwaysAllow
            return None, user, receive
        decision = self.authorizer.authorize(user, attrs)
        if not decision.allowed:
            log.debug("forbidden: user %s %s %s", user.name, attrs.verb, attrs.path)
            return _forbidden(user, attrs, forbidden_message(user, attrs, decision.reason)), user, receive
        if user.node_name is None or not attrs.is_write:
            return None, user, receive
        body: Obj | None = None
        if node_restriction.needs_body(user, attrs):
            raw, receive = await _buffer_body(receive)
            body = _decode(raw, headers.get(b"content-type", b"").decode("latin-1") or None)
        assert self.app.state is not None
        pods = self.app.state.registry.handle("pods")

        async def read_pod(namespace: str, name: str) -> Obj | None:
            kv = await pods.storage.get(pods.key(namespace, name))
            return orjson.loads(kv.value) if kv is not None else None

        why = await node_restriction.check(user, attrs, body, read_pod)
        if why is not None:
            return _forbidden(user, attrs, why), user, receive
        return None, user, receive


def _decode(raw: bytes, content_type: str | None) -> Obj | None:
    from apiserver.codec import decode_body

    try:
        decoded = decode_body(raw, content_type)
    except ApiError:
        return None  # the handler reports the malformed body; the restriction sees no name and refuses
    return decoded if isinstance(decoded, dict) else None


async def _buffer_body(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole request body and return a `receive` that replays it to the app."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def secure_app(app: StatefulApp, settings: SecuritySettings) -> ASGIApp:
    return AuthMiddleware(app, settings)



