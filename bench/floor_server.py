"""The floors under the API server's create: uvicorn run as the API server runs it, answering a ConfigMap create
without the API server's work (`bench_api_cpu.py --floors` measures them beside the real server).

    python -m bench.floor_server --mode http|etcd --etcd-servers URL --port PORT

- `--mode http`: reads the request body and answers 201 with it. What serving one request costs before any
  Kubernetes work: uvicorn's HTTP protocol (the API server's one-write variant), uvloop, the sockets.
- `--mode etcd`: the same, after writing the body to etcd under a fresh key through the API server's own
  storage (`EtcdStorage.create`: one compare-and-put over grpc.aio, as a create makes).

The real create costs these plus the API server's own handling (routing, decoding, validation, metadata,
managedFields, encoding, metrics). `GET /readyz` answers 200 once etcd is connected, so bench.support's
readiness wait works for these servers too.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import uuid
from typing import Any

import uvicorn

from apiserver.__main__ import GC_THRESHOLDS
from apiserver.coalescing import CoalescingHttpToolsProtocol
from apiserver.storage.etcd import EtcdStorage

Message = dict[str, Any]


class FloorApp:
    """ASGI app: POST answers 201 with the request's body (stored in etcd first with `etcd_servers`)."""

    def __init__(self, etcd_servers: list[str] | None) -> None:
        self._etcd_servers = etcd_servers
        self._storage: EtcdStorage | None = None
        self._prefix = f"/bench-floor/{uuid.uuid4().hex[:8]}/"
        self._counter = itertools.count()

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["method"] != "POST":
            await _respond(send, 200, b"ok", b"text/plain")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self._storage is not None:
            await self._storage.create(f"{self._prefix}{next(self._counter)}", body)
        await _respond(send, 201, body, b"application/json")

    async def _lifespan(self, receive: Any, send: Any) -> None:
        await receive()  # lifespan.startup
        if self._etcd_servers:
            self._storage = EtcdStorage(self._etcd_servers)
            await self._storage.connect()
        gc.collect()  # as the API server does once serving
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        if self._storage is not None:
            await self._storage.close()
        await send({"type": "lifespan.shutdown.complete"})


async def _respond(send: Any, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("http", "etcd"), required=True)
    parser.add_argument("--etcd-servers", default="")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.mode == "etcd" and not args.etcd_servers:
        parser.error("--mode etcd needs --etcd-servers")
    app = FloorApp(args.etcd_servers.split(",") if args.mode == "etcd" else None)
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http=CoalescingHttpToolsProtocol,
                lifespan="on", access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
