"""`python -m apiserver --etcd-servers URL --etcd-prefix /registry --bind-address 127.0.0.1 --port 6443`."""

from __future__ import annotations

import logging
import sys

import uvicorn

from apiserver.app import create_app
from apiserver.auth.setup import secure, serving_options
from apiserver.config import parse_args


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(config)
    # uvicorn handles SIGTERM/SIGINT: stop accepting, give open requests (watches) a few seconds, then run
    # the lifespan shutdown that stops the watch caches and closes etcd.
    server = uvicorn.Server(uvicorn.Config(secure(app, config), host=config.bind_address, port=config.port,
                                           lifespan="on", log_level=config.log_level, access_log=False,
                                           timeout_graceful_shutdown=5, **serving_options(config)))
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
