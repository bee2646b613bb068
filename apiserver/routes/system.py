"""/version, /healthz, /livez, /readyz and /metrics."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from apiserver.handlers.common import json_response
from apiserver.handlers.state import ServerState

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T17:59:15Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}


async def version(state: ServerState, request: Request) -> Response:
    return json_response(VERSION)


async def livez(state: ServerState, request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(state: ServerState, request: Request) -> Response:
    """Ready when etcd answers; `?verbose` lists the checks as Kubernetes does."""
    try:
        await asyncio.wait_for(state.registry.storage.current_revision(), timeout=2.0)
        etcd_ok = True
    except Exception:  # any failure to reach etcd means not ready
        etcd_ok = False
    if "verbose" in request.query_params:
        text = f"[{'+' if etcd_ok else '-'}]etcd {'ok' if etcd_ok else 'failed'}\n"
        text += "readyz check passed\n" if etcd_ok else "readyz check failed\n"
        return PlainTextResponse(text, status_code=200 if etcd_ok else 500)
    return PlainTextResponse("ok" if etcd_ok else "[-]etcd failed: reason withheld\nreadyz check failed",
                             status_code=200 if etcd_ok else 500)


async def metrics(state: ServerState, request: Request) -> Response:
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
