"""`python -m apiserver --etcd-servers URL --etcd-prefix /registry --bind-address 127.0.0.1 --port 6443`."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import sys
from types import FrameType

import uvicorn

from apiserver.app import ApiServerApp, create_app
from apiserver.auth.setup import secure, serving_options
from apiserver.coalescing import CoalescingHttpToolsProtocol
from apiserver.config import parse_args


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
    server = _Server(app, uvicorn.Config(secure(app, config), host=config.bind_address, port=config.port,
                                         lifespan="on", loop=loop, log_level=config.log_level, access_log=False,
                                         timeout_graceful_shutdown=5, **options))
    server.run()
    return 0


class _Server(uvicorn.Server):
    def __init__(self, app: ApiServerApp, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._app = app
        self._ending: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._ending is None:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing is being served yet
                self._ending = asyncio.get_running_loop().create_task(self._app.end_watches())
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    sys.exit(main())
