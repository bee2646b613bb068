"""`python -m apiserver --etcd-servers URL --etcd-prefix /registry --bind-address 127.0.0.1 --port 6443`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import importlib.util
import logging
import socket
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn

from apiserver.app import ApiServerApp, create_app
from apiserver.auth.setup import secure, serving_options
from apiserver.coalescing import CoalescingHttpToolsProtocol
from apiserver.config import Config, parse_args
from apiserver.workers import WorkerSupervisor, check_port_free, shared_listening_socket

GC_THRESHOLDS = (10_000, 10, 10)
"""The collector's thresholds once serving (Python's are 700, 10, 10). A server holding many connections, such
as 1,000 watches, has a large young population of long-lived objects; at the default a full collection came
round every few seconds while they settled and stalled every stream for ~100 ms each time. In full bench_api
runs the fan-out's p99 delivery was 590-850 ms, and 54-80 ms with these thresholds (the bench's own process,
which showed the same pauses, now freezes its heap first). Requests free what they allocate by reference
counting, so collections are rarer, not bigger in total; cyclic garbage is still collected, in larger batches."""


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    workers = config.workers > 1
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s " + ("[%(process)d] " if workers else "")
                        + "%(name)s: %(message)s")
    if not workers:
        serve(config)
        return 0
    # The port is checked before any worker starts: in use by another program, it fails here, at once.
    check_port_free(config.bind_address, config.port)

    def worker_main(index: int, serving: Callable[[], None]) -> None:
        # One server per address is enough for compaction and the `kubernetes` endpoint lease: worker 0's.
        serve(config if index == 0 else dataclasses.replace(config, etcd_compaction_interval=0,
                                                              endpoint_lease_duration=0),
              shared_listening_socket(config.bind_address, config.port), serving=serving)

    return WorkerSupervisor(config.workers, worker_main).run()


def serve(config: Config, sock: socket.socket | None = None, *, serving: Callable[[], None] | None = None) -> None:
    """One API server until SIGTERM/SIGINT: on its own port, or on `sock` as one of several workers.
    `serving` is called once it serves. A server that fails to start exits with status 3, as uvicorn's own."""
    app = create_app(config)
    # uvloop's event loop and transports are C: about a tenth less server CPU per create with 50 in flight
    # (paired runs of the stdlib loop and uvloop under bench_api's load), and grpc.aio (etcd) runs on it as is.
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    # uvicorn handles SIGTERM/SIGINT: stop accepting, wait for open requests (at most a few seconds), then run
    # the lifespan shutdown that closes etcd. Watches would hold that wait to its end, so the signal first
    # ends every watch stream (clients re-watch elsewhere, as when a Kubernetes API server restarts).
    options = serving_options(config)
    if options.get("http") == "httptools":  # plain HTTP: one write per response (TLS keeps its own protocol)
        options["http"] = CoalescingHttpToolsProtocol
    server = _Server(app, serving, uvicorn.Config(secure(app, config), host=config.bind_address, port=config.port,
                                         lifespan="on", loop=loop, log_level=config.log_level, access_log=False,
                                         timeout_graceful_shutdown=5, **options))
    server.run(sockets=[sock] if sock is not None else None)
    if not server.started:
        raise SystemExit(3)


class _Server(uvicorn.Server):
    def __init__(self, app: ApiServerApp, serving: Callable[[], None] | None, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._app = app
        self._serving = serving
        self._ending: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # What the app loaded (schemas, compiled validators, caches' scaffolding) lives as long as the process:
        # out of the collector's view, full collections no longer walk it (about 3 % less CPU per create).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        if self.started and self._serving is not None:
            self._serving()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._ending is None:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing is being served yet
                self._ending = asyncio.get_running_loop().create_task(self._app.end_watches())
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    sys.exit(main())
