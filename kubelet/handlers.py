"""Run one probe or lifecycle-hook handler (exec, httpGet, tcpSocket, sleep) against a container.

Shared by probes (liveness/readiness/startup) and hooks (postStart/preStop): each returns a `HandlerResult`
instead of raising, so callers decide what a failure means.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from aiokube.api.types import Obj
from kubelet.cri import CriError, RuntimeClient


@dataclass
class HandlerResult:
    success: bool
    message: str = ""


def resolve_port(port: int | str, container: Obj) -> int:
    """A probe port is a number or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} is not a named port of container {container.get('name')}")


async def run_handler(
    handler: Obj, *, runtime: RuntimeClient, container_id: str, container: Obj, pod_ip: str, timeout: float  # noqa: ASYNC109
) -> HandlerResult:
    try:
        if "exec" in handler:
            command = [str(a) for a in handler["exec"].get("command") or []]
            r = await runtime.exec_sync(container_id, command, max(1, int(timeout)))
            output = (r.stdout + r.stderr).decode(errors="replace")
            if r.exit_code == 0:
                return HandlerResult(True, output)
            return HandlerResult(False, f"command {command!r} exited with {r.exit_code}: {output}".strip())
        if "httpGet" in handler:
            return await _http_get(handler["httpGet"], container, pod_ip, timeout)
        if "tcpSocket" in handler:
            spec = handler["tcpSocket"]
            host = spec.get("host") or pod_ip
            port = resolve_port(spec["port"], container)
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.close()
            return HandlerResult(True)
        if "sleep" in handler:
            await asyncio.sleep(int(handler["sleep"].get("seconds", 0)))
            return HandlerResult(True)
        return HandlerResult(False, "handler has no exec, httpGet, tcpSocket or sleep action")
    except (CriError, OSError, TimeoutError, ValueError, httpx.HTTPError) as e:
        return HandlerResult(False, str(e) or type(e).__name__)


async def _http_get(spec: Obj, container: Obj, pod_ip: str, timeout: float) -> HandlerResult:  # noqa: ASYNC109
    host = spec.get("host") or pod_ip
    port = resolve_port(spec["port"], container)
    scheme = str(spec.get("scheme", "HTTP")).lower()
    path = spec.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
    headers.setdefault("User-Agent", "kube-probe/1.32")
    url = f"{scheme}://{host}:{port}{path}"
    # Probes do not verify certificates (as the kubelet) and follow redirects only to the same host.
    async with httpx.AsyncClient(verify=False, timeout=timeout, follow_redirects=True) as http:
        response = await http.get(url, headers=headers)
    if 200 <= response.status_code < 400:
        return HandlerResult(True, f"HTTP probe succeeded with statuscode: {response.status_code}")
    return HandlerResult(False, f"HTTP probe failed with statuscode: {response.status_code}")
