"""ApiClient: URLs from the registry, bodies and content types, Status errors, retries, watch decoding."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable

import httpx
import pytest

from aiokube.api.errors import ApiError
from aiokube.client import ApiClient, RetryPolicy


class InstantClock:
    """Records requested sleeps and returns at once."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return 0.0

    def now(self) -> dt.datetime:
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler: Handler, clock: InstantClock | None = None) -> ApiClient:
    return ApiClient("http://api.test", transport=httpx.MockTransport(handler), clock=clock or InstantClock(),
                     retry=RetryPolicy(max_attempts=4))


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"kind": "Echo", "method": request.method, "path": request.url.path})


async def test_urls_come_from_the_registry() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        return ok(request)

    async with make_client(handler) as client:
        await client.get("pods", "web-1", namespace="default")
        await client.get("nodes", "n1", namespace="ignored-for-cluster-scoped")
        await client.list("deployments", namespace="prod", label_selector="app=web", limit=10, continue_="abc")
        await client.list("apps/v1/replicasets")
        await client.create("pods", {"metadata": {"name": "p", "namespace": "ns1"}})
        await client.update_status("pods", {"metadata": {"name": "p", "namespace": "ns1"}})
        await client.create_subresource("pods", "p", "binding", {"target": {"name": "n1"}}, namespace="ns1")
    assert seen == [
        "GET /api/v1/namespaces/default/pods/web-1?",
        "GET /api/v1/nodes/n1?",
        "GET /apis/apps/v1/namespaces/prod/deployments?labelSelector=app%3Dweb&limit=10&continue=abc",
        "GET /apis/apps/v1/replicasets?",
        "POST /api/v1/namespaces/ns1/pods?",
        "PUT /api/v1/namespaces/ns1/pods/p/status?",
        "POST /api/v1/namespaces/ns1/pods/p/binding?",
    ]


@pytest.mark.parametrize(("patch_type", "content_type"), [
    ("merge", "application/merge-patch+json"),
    ("strategic", "application/strategic-merge-patch+json"),
    ("json", "application/json-patch+json"),
    ("apply", "application/apply-patch+yaml"),
])
async def test_patch_content_types(patch_type: str, content_type: str) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return ok(request)

    body: object = [{"op": "add", "path": "/spec/replicas", "value": 3}] if patch_type == "json" \
        else {"spec": {"replicas": 3}}
    async with make_client(handler) as client:
        await client.patch("deployments", "web", body, namespace="default", patch_type=patch_type,  # type: ignore[arg-type]
                           field_manager="me" if patch_type == "apply" else None,
                           force=True if patch_type == "apply" else None)
    (request,) = requests
    assert request.method == "PATCH"
    assert request.url.path == "/apis/apps/v1/namespaces/default/deployments/web"
    assert request.headers["content-type"] == content_type
    assert json.loads(request.content) == body
    if patch_type == "apply":
        assert request.url.params["fieldManager"] == "me"
        assert request.url.params["force"] == "true"


async def test_apply_requires_field_manager() -> None:
    async with make_client(ok) as client:
        with pytest.raises(ValueError, match="field_manager"):
            await client.patch("pods", "p", {}, namespace="default", patch_type="apply")


async def test_delete_sends_delete_options() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"kind": "Status", "status": "Success"})

    async with make_client(handler) as client:
        result = await client.delete("pods", "p", namespace="default", propagation_policy="Foreground",
                                     grace_period_seconds=0, preconditions={"uid": "u1"})
    assert result["status"] == "Success"
    assert json.loads(requests[0].content) == {
        "kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground",
        "gracePeriodSeconds": 0, "preconditions": {"uid": "u1"}}


async def test_errors_decode_the_status_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                         "message": 'pods "x" not found', "reason": "NotFound", "code": 404,
                                         "details": {"name": "x", "kind": "pods"}})

    async with make_client(handler) as client:
        with pytest.raises(ApiError) as info:
            await client.get("pods", "x", namespace="default")
    assert (info.value.code, info.value.reason, info.value.message) == (404, "NotFound", 'pods "x" not found')
    assert info.value.details["name"] == "x"


async def test_non_status_error_body_still_raises() -> None:
    async with make_client(lambda r: httpx.Response(403, text="forbidden by proxy")) as client:
        with pytest.raises(ApiError) as info:
            await client.create("configmaps", {"metadata": {"name": "c"}})
    assert info.value.code == 403
    assert "forbidden by proxy" in info.value.message


async def test_429_is_retried_after_retry_after_for_writes_too() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "3"}, json={"kind": "Status", "code": 429}),
                    httpx.Response(201, json={"kind": "ConfigMap"})])
    clock = InstantClock()
    async with make_client(lambda r: next(answers), clock) as client:
        created = await client.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}})
    assert created["kind"] == "ConfigMap"
    assert clock.sleeps == [3.0]


async def test_5xx_retried_for_reads_with_growing_backoff_and_bounded_attempts() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503, json={"kind": "Status", "code": 503, "message": "etcd down"})

    clock = InstantClock()
    async with make_client(handler, clock) as client:
        with pytest.raises(ApiError) as info:
            await client.get("pods", "p", namespace="default")
    assert info.value.code == 503
    assert calls == 4
    assert len(clock.sleeps) == 3
    assert clock.sleeps[0] < clock.sleeps[2]


async def test_5xx_not_retried_for_writes() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(500, json={"kind": "Status", "code": 500, "message": "boom"})

    async with make_client(handler) as client:
        with pytest.raises(ApiError):
            await client.update("pods", {"metadata": {"name": "p", "namespace": "default"}})
    assert calls == 1


async def test_connection_refused_retried_for_writes_but_read_errors_are_not() -> None:
    calls = {"PUT": 0, "PATCH": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls[request.method] += 1
        if request.method == "PUT" and calls["PUT"] == 1:
            raise httpx.ConnectError("connection refused", request=request)
        if request.method == "PATCH":
            raise httpx.ReadError("reset after sending", request=request)
        return ok(request)

    async with make_client(handler) as client:
        await client.update("pods", {"metadata": {"name": "p", "namespace": "default"}})
        with pytest.raises(httpx.ReadError):
            await client.patch("pods", "p", {"metadata": {}}, namespace="default")
    assert calls == {"PUT": 2, "PATCH": 1}


async def test_watch_yields_events_and_ends_with_the_stream() -> None:
    lines = [{"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "5"}}},
             {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
             {"type": "DELETED", "object": {"metadata": {"name": "a", "resourceVersion": "8"}}}]
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content="".join(json.dumps(x) + "\n" for x in lines).encode())

    async with make_client(handler) as client:
        events = [e async for e in client.watch("pods", "default", resource_version="4", timeout_seconds=60)]
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK", "DELETED"]
    params = requests[0].url.params
    assert (params["watch"], params["resourceVersion"], params["allowWatchBookmarks"],
            params["timeoutSeconds"]) == ("true", "4", "true", "60")


async def test_watch_error_event_raises_its_status() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                        "message": "too old resource version: 1 (5)"}}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=(json.dumps(gone) + "\n").encode())

    async with make_client(handler) as client:
        with pytest.raises(ApiError) as info:
            async for _ in client.watch("pods", resource_version="1"):
                pass
    assert (info.value.code, info.value.reason) == (410, "Expired")


async def test_watch_establishment_is_retried_on_503() -> None:
    answers = iter([httpx.Response(503, json={"kind": "Status", "code": 503}),
                    httpx.Response(200, content=b'{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n')])
    async with make_client(lambda r: next(answers)) as client:
        events = [e async for e in client.watch("pods")]
    assert len(events) == 1


async def test_watch_refused_with_status_raises() -> None:
    async with make_client(lambda r: httpx.Response(403, json={"kind": "Status", "code": 403,
                                                                "reason": "Forbidden", "message": "no"})) as client:
        with pytest.raises(ApiError) as info:
            async for _ in client.watch("pods"):
                pass
    assert info.value.code == 403


async def test_request_escape_hatch_returns_the_raw_response() -> None:
    async with make_client(lambda r: httpx.Response(404, text="nope")) as client:
        response = await client.request("GET", "/version")
    assert response.status_code == 404


async def test_watch_streams_over_a_real_socket_before_the_response_ends() -> None:
    """Events must reach the caller as they are written, not when the chunked response completes."""
    release = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for event in ({"type": "ADDED", "object": {"metadata": {"name": "a"}}},
                      {"type": "MODIFIED", "object": {"metadata": {"name": "a"}}}):
            line = (json.dumps(event) + "\n").encode()
            writer.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            await writer.drain()
            await release.wait()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with ApiClient(f"http://127.0.0.1:{port}") as client:
            stream = client.watch("pods", resource_version="1")
            first = await asyncio.wait_for(anext(stream), 2)
            assert first["type"] == "ADDED"
            release.set()
            rest = [e["type"] async for e in stream]
            assert rest == ["MODIFIED"]
    finally:
        server.close()
        await server.wait_closed()
