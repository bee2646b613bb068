"""Run the real API server (uvicorn + the ASGI app) on a free loopback port in a background thread."""

from __future__ import annotations

import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import uvicorn

from apiserver.app import create_app
from apiserver.coalescing import CoalescingHttpToolsProtocol
from apiserver.config import Config
from tests.support.etcd import free_port


@contextmanager
def running_apiserver(etcd_url: str, etcd_prefix: str, **overrides: object) -> Iterator[str]:
    """Yields the server's base URL; stops it (lifespan shutdown included) on exit."""
    port = free_port()
    config = replace(Config(etcd_servers=(etcd_url,), etcd_prefix=etcd_prefix, port=port), **overrides)  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, lifespan="on",
                                           log_level="warning", access_log=False, timeout_graceful_shutdown=2,
                                           http=CoalescingHttpToolsProtocol))  # as `python -m apiserver`
    with serving_in_thread(server, f"http://127.0.0.1:{port}", f"apiserver-{port}") as url:
        yield url


@contextmanager
def serving_in_thread(server: uvicorn.Server, url: str, thread_name: str,
                      context: ssl.SSLContext | None = None) -> Iterator[str]:
    """Run `server` in a daemon thread until its /readyz answers 200 (verified with `context` for TLS), yield
    `url`, and stop it (lifespan shutdown included) on exit."""
    # uvicorn installs signal handlers only in the main thread, so this thread leaves the test's alone.
    thread = threading.Thread(target=server.run, name=thread_name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1, context=context) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the API server at {url} did not become ready")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(15)
