"""The asynchronous REST client for the Kubernetes API (this project's client-go `rest` + `dynamic` client).

One `httpx.AsyncClient` (one connection pool) per `ApiClient`. Resources are named as
`aiokube.api.resources.lookup()` accepts them and URLs come from the registry. Every non-2xx answer becomes an
`ApiError` decoded from the Status body; retries follow `retry.RetryPolicy`.

For a plain http:// server (and no injected transport) the typed verbs skip httpx and go through
`http11.Http11Pool`, which costs a fraction of httpx's per-request CPU; watches and the raw `request()` escape
hatch always use httpx. JSON is encoded and decoded with orjson.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import orjson

from aiokube.api.errors import ApiError
from aiokube.api.resources import ResourceInfo, lookup
from aiokube.api.types import Obj
from aiokube.client.clock import REAL_CLOCK, Clock
from aiokube.client.http11 import Http11Pool, RawResponse
from aiokube.client.kubeconfig import KubeConfig, load_kubeconfig
from aiokube.client.retry import RetryPolicy, parse_retry_after, retryable_exception, retryable_status

log = logging.getLogger(__name__)

_Answer = TypeVar("_Answer", httpx.Response, RawResponse)

PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}

# Ordinary requests get a bounded wait; watches override the read timeout because a quiet watch is healthy.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def error_from_response(response: httpx.Response) -> ApiError:
    """Decode a failed response's metav1.Status; fall back to the raw text when the body is not a Status."""
    try:
        body = response.json()
    except (ValueError, httpx.ResponseNotRead):
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        return ApiError.from_status(body, fallback_code=response.status_code)
    try:
        text = response.text.strip()
    except httpx.ResponseNotRead:
        text = ""
    return ApiError(response.status_code, text or response.reason_phrase)


class ApiClient:
    def __init__(self, server: str = "http://127.0.0.1:6443", *, token: str | None = None,
                 verify: Any = True, namespace: str = "default",
                 transport: httpx.AsyncBaseTransport | None = None,
                 retry: RetryPolicy | None = None, clock: Clock = REAL_CLOCK,
                 user_agent: str = "aiokube-client/0.1", lean_http: bool = True) -> None:
        headers = {"Accept": "application/json", "User-Agent": user_agent}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.server = server.rstrip("/")
        self.namespace = namespace
        self.retry = retry if retry is not None else RetryPolicy()
        self._clock = clock
        self._http = httpx.AsyncClient(base_url=self.server, headers=headers, verify=verify,
                                       transport=transport, timeout=DEFAULT_TIMEOUT)
        # An injected transport (tests' mocks) must see every request, so the lean path is only for the default.
        self._lean: Http11Pool | None = None
        if lean_http and transport is None and self.server.startswith("http://"):
            self._lean = Http11Pool.for_url(self.server)
        self._lean_headers = [(k.encode(), v.encode()) for k, v in headers.items()]

    @classmethod
    def from_config(cls, config: KubeConfig, **kwargs: Any) -> ApiClient:
        return cls(config.server, token=config.token, verify=config.ssl_context(),
                   namespace=config.namespace, **kwargs)

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None, **kwargs: Any) -> ApiClient:
        return cls.from_config(load_kubeconfig(path, context), **kwargs)

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._lean is not None:
            await self._lean.aclose()
        await self._http.aclose()

    # -- the raw layer ----------------------------------------------------------------------------------

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request with retries; return the final response whatever its status (escape hatch)."""
        method = method.upper()
        return await self._retrying(method, path, lambda: self._http.request(method, path, **kwargs),
                                    lambda response: response.status_code,
                                    lambda response: response.headers.get("Retry-After"))

    async def _retrying(self, method: str, path: str, send: Callable[[], Awaitable[_Answer]],
                        status_of: Callable[[_Answer], int],
                        retry_after_of: Callable[[_Answer], str | None]) -> _Answer:
        """Call `send` until it answers with a status not worth retrying or the policy's attempts run out;
        transport errors are retried only where `retryable_exception` allows (the request may have landed)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = await send()
            except httpx.TransportError as exc:
                if attempt >= self.retry.max_attempts or not retryable_exception(method, exc):
                    raise
                delay = self.retry.delay(attempt)
                log.debug("%s %s failed (%s); retrying in %.2fs", method, path, exc, delay)
                await self._clock.sleep(delay)
                continue
            status = status_of(answer)
            if attempt < self.retry.max_attempts and retryable_status(method, status):
                delay = self.retry.delay(attempt, parse_retry_after(retry_after_of(answer)))
                log.debug("%s %s answered %d; retrying in %.2fs", method, path, status, delay)
                await self._clock.sleep(delay)
                continue
            return answer

    async def _json(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    json: Any = None, content: bytes | None = None, headers: dict[str, str] | None = None) -> Obj:
        """Send a typed verb's request and decode its JSON answer; non-2xx raises ApiError."""
        if json is not None:
            content = orjson.dumps(json)
            headers = {"Content-Type": "application/json", **(headers or {})}
        if self._lean is None:
            response = await self.request(method, path, params=params, content=content, headers=headers)
            if not response.is_success:
                raise error_from_response(response)
            result: Obj = orjson.loads(response.content)
            return result
        raw = await self._lean_request(method, path, params, content or b"", headers)
        if not raw.is_success:
            raise error_from_response(raw.to_httpx(method, self.server + path))
        decoded: Obj = orjson.loads(raw.content)
        return decoded

    async def _lean_request(self, method: str, path: str, params: dict[str, str] | None, body: bytes,
                            headers: dict[str, str] | None) -> RawResponse:
        """`request()`'s retry loop over the lean pool."""
        assert self._lean is not None
        target = f"{path}?{urlencode(params)}" if params else path
        header_list = self._lean_headers
        if headers:
            header_list = [*header_list, *((k.encode(), v.encode()) for k, v in headers.items())]
        lean = self._lean
        return await self._retrying(method, path, lambda: lean.send(method, target, header_list, body),
                                    lambda raw: raw.status_code, lambda raw: raw.header("Retry-After"))

    def _namespace_for(self, info: ResourceInfo, namespace: str | None, body: Obj | None = None) -> str | None:
        if not info.namespaced:
            return None
        if namespace:
            return namespace
        if body is not None:
            return (body.get("metadata") or {}).get("namespace") or self.namespace
        return self.namespace

    # -- typed verbs --------------------------------------------------------------------------------------

    async def get(self, resource: str, name: str, namespace: str | None = None,
                  subresource: str | None = None) -> Obj:
        info = lookup(resource)
        return await self._json("GET", info.path(self._namespace_for(info, namespace), name, subresource))

    async def list(self, resource: str, namespace: str | None = None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int | None = None, continue_: str | None = None,
                   resource_version: str | None = None) -> Obj:
        """List one page (or everything without `limit`); `namespace=None` lists across all namespaces."""
        info = lookup(resource)
        params = _selector_params(label_selector, field_selector)
        if limit is not None:
            params["limit"] = str(limit)
        if continue_:
            params["continue"] = continue_
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        return await self._json("GET", info.path(namespace if info.namespaced else None), params=params)

    async def create(self, resource: str, body: Obj, namespace: str | None = None, *,
                     field_manager: str | None = None, dry_run: bool = False) -> Obj:
        info = lookup(resource)
        return await self._json("POST", info.path(self._namespace_for(info, namespace, body)), json=body,
                                params=_write_params(field_manager, dry_run))

    async def update(self, resource: str, body: Obj, namespace: str | None = None, *,
                     field_manager: str | None = None) -> Obj:
        """PUT the whole object; the server answers 409 when body's resourceVersion is stale."""
        return await self._put(resource, body, namespace, None, field_manager)

    async def update_status(self, resource: str, body: Obj, namespace: str | None = None, *,
                            field_manager: str | None = None) -> Obj:
        return await self._put(resource, body, namespace, "status", field_manager)

    async def _put(self, resource: str, body: Obj, namespace: str | None, subresource: str | None,
                   field_manager: str | None) -> Obj:
        info = lookup(resource)
        name = (body.get("metadata") or {}).get("name")
        if not name:
            raise ValueError("update needs body.metadata.name")
        path = info.path(self._namespace_for(info, namespace, body), name, subresource)
        return await self._json("PUT", path, json=body, params=_write_params(field_manager, False))

    async def patch(self, resource: str, name: str, body: Obj | builtins.list[Any] | str, namespace: str | None = None,
                    *, patch_type: str = "merge", subresource: str | None = None,
                    field_manager: str | None = None, force: bool | None = None) -> Obj:
        """Patch with a merge, strategic-merge, JSON (a list of operations) or server-side apply body."""
        if patch_type not in PATCH_CONTENT_TYPES:
            raise ValueError(f"unknown patch_type {patch_type!r}; one of {sorted(PATCH_CONTENT_TYPES)}")
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        if force is not None and patch_type != "apply":
            raise ValueError("force applies only to patch_type='apply'")
        info = lookup(resource)
        params = _write_params(field_manager, False)
        if force is not None:
            params["force"] = "true" if force else "false"
        # JSON is valid YAML, so an apply body that is a dict is sent as JSON.
        content = body.encode() if isinstance(body, str) else orjson.dumps(body)
        return await self._json("PATCH", info.path(self._namespace_for(info, namespace), name, subresource),
                                content=content, params=params,
                                headers={"Content-Type": PATCH_CONTENT_TYPES[patch_type]})

    async def delete(self, resource: str, name: str, namespace: str | None = None, *,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                     preconditions: dict[str, str] | None = None) -> Obj:
        """Delete; returns the server's body (the object while finalizers run, else a Success Status)."""
        info = lookup(resource)
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            options["preconditions"] = preconditions
        return await self._json("DELETE", info.path(self._namespace_for(info, namespace), name),
                                content=orjson.dumps(options),
                                headers={"Content-Type": "application/json"})

    async def create_subresource(self, resource: str, name: str, subresource: str, body: Obj,
                                 namespace: str | None = None) -> Obj:
        """POST to a subresource such as pods/binding or pods/eviction."""
        info = lookup(resource)
        return await self._json("POST", info.path(self._namespace_for(info, namespace, body), name, subresource),
                                json=body)

    # -- watch --------------------------------------------------------------------------------------------

    async def watch(self, resource: str, namespace: str | None = None, *, resource_version: str | None = None,
                    label_selector: str | None = None, field_selector: str | None = None,
                    allow_bookmarks: bool = True, timeout_seconds: int | None = None,
                    ) -> AsyncIterator[Obj]:
        """Yield watch events ({"type", "object"}) until the server ends the stream.

        Establishing the watch is retried like a GET. An ERROR event raises its Status as ApiError (410 Expired
        means: relist). A connection that breaks mid-stream just ends the iteration; the caller resumes from
        the last resourceVersion it saw.
        """
        info = lookup(resource)
        params = _selector_params(label_selector, field_selector)
        params["watch"] = "true"
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if timeout_seconds is not None:
            params["timeoutSeconds"] = str(timeout_seconds)
        path = info.path(namespace if info.namespaced else None)
        chunks = self._lean_stream_chunks(path, params) if self._lean else self._stream_chunks(path, params)
        try:
            # One JSON document per line; split bytes and decode with orjson (no str round trip).
            pending = b""
            async for chunk in chunks:
                lines = (pending + chunk).split(b"\n") if pending else chunk.split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if not line.strip():
                        continue
                    event: Obj = orjson.loads(line)
                    if event.get("type") == "ERROR":
                        raise ApiError.from_status(event.get("object") or {})
                    yield event
            if pending.strip():
                last: Obj = orjson.loads(pending)
                if last.get("type") == "ERROR":
                    raise ApiError.from_status(last.get("object") or {})
                yield last
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout) as exc:
            log.debug("watch %s ended by a broken stream: %s", path, exc)
        finally:
            await chunks.aclose()

    async def _stream_chunks(self, path: str, params: dict[str, str]) -> AsyncGenerator[bytes, None]:
        """The body of a streamed GET through httpx; a refusal raises its ApiError."""
        response = await self._open_stream(path, params)
        try:
            if not response.is_success:
                await response.aread()
                raise error_from_response(response)
            async for chunk in response.aiter_bytes():
                yield chunk
        finally:
            await response.aclose()

    async def _lean_stream_chunks(self, path: str, params: dict[str, str]) -> AsyncGenerator[bytes, None]:
        """`_stream_chunks` over the lean pool (its own connection per stream), with the same retries."""
        assert self._lean is not None
        target = f"{path}?{urlencode(params)}" if params else path
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._lean.stream("GET", target, self._lean_headers)
            except httpx.TransportError as exc:
                if attempt >= self.retry.max_attempts or not retryable_exception("GET", exc):
                    raise
                await self._clock.sleep(self.retry.delay(attempt))
                continue
            try:
                if not response.is_success:
                    raw = await response.read()
                    if attempt < self.retry.max_attempts and retryable_status("GET", raw.status_code):
                        await self._clock.sleep(self.retry.delay(attempt, parse_retry_after(raw.header("Retry-After"))))
                        continue
                    raise error_from_response(raw.to_httpx("GET", self.server + target))
                async for chunk in response.iter_bytes():
                    yield chunk
                return
            finally:
                response.close()

    async def _open_stream(self, path: str, params: dict[str, str]) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            request = self._http.build_request("GET", path, params=params,
                                               timeout=httpx.Timeout(30.0, connect=5.0, read=None))
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                if attempt >= self.retry.max_attempts or not retryable_exception("GET", exc):
                    raise
                await self._clock.sleep(self.retry.delay(attempt))
                continue
            if attempt < self.retry.max_attempts and retryable_status("GET", response.status_code):
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                await response.aclose()
                await self._clock.sleep(self.retry.delay(attempt, retry_after))
                continue
            return response


def _selector_params(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def _write_params(field_manager: str | None, dry_run: bool) -> dict[str, str]:
    params: dict[str, str] = {}
    if field_manager:
        params["fieldManager"] = field_manager
    if dry_run:
        params["dryRun"] = "All"
    return params
