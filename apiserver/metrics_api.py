"""The resource metrics API (metrics.k8s.io/v1beta1) that `kubectl top` reads, served from the node agents.

Kubernetes serves it from metrics-server behind the aggregation layer; here the API server answers directly: every
request asks the node agents' `/stats/summary` (address and port from each Node, as the pods/log proxy does) and
turns their current usage into NodeMetrics and PodMetrics. Nothing is stored. A node that does not answer in time
is left out (as metrics-server leaves out nodes it failed to scrape) rather than failing the whole list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from apiserver.handlers.common import json_response, now_rfc3339
from apiserver.handlers.nodeproxy import KubeletClientTLS, kubelet_tls, node_endpoint
from apiserver.handlers.read import get_object, list_objects
from apiserver.handlers.state import ServerState

log = logging.getLogger(__name__)

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
PREFIX = f"/apis/{GROUP}"
SCRAPE_TIMEOUT = 3.0  # seconds per node; `kubectl top` should answer promptly even with a node down
WINDOW = "10s"  # containerd's CPU rate is averaged over its stats sampling period

RESOURCES: list[Obj] = [
    {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
    {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]},
]


def discovery_group() -> Obj:
    """The entry for /apis (APIGroupList.groups)."""
    version = {"groupVersion": GROUP_VERSION, "version": VERSION}
    return {"name": GROUP, "versions": [version], "preferredVersion": version}


def cpu_quantity(nano_cores: float) -> str:
    return f"{int(nano_cores)}n"


def memory_quantity(num_bytes: float) -> str:
    return f"{int(num_bytes) // 1024}Ki"


def _node_address(node: Obj, tls: KubeletClientTLS | None = None) -> str | None:
    return node_endpoint(node, tls)


async def _summary(client: httpx.AsyncClient, node: Obj, tls: KubeletClientTLS | None) -> Obj | None:
    base = _node_address(node, tls)
    if base is None:
        return None
    try:
        response = await client.get(f"{base}/stats/summary")
        response.raise_for_status()
        summary: Obj = response.json()
        return summary
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("metrics: no summary from node %s: %s", node["metadata"]["name"], exc)
        return None


async def _summaries(state: ServerState, nodes: list[Obj]) -> dict[str, Obj]:
    tls = kubelet_tls(state)  # https to the node agents when the API server is their TLS client
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT, verify=tls.ssl_context if tls else True) as client:
        results = await asyncio.gather(*(_summary(client, n, tls) for n in nodes))
    return {n["metadata"]["name"]: s for n, s in zip(nodes, results, strict=True) if s is not None}


def node_metrics(node: Obj, summary: Obj) -> Obj:
    """NodeMetrics from a summary. The node's CPU is its pods' (nodes on one machine share the host's CPUs, so
    the host's total would be every node's); memory is the node's working set as the agent reports it."""
    pods = summary.get("pods", [])
    node_stats = summary.get("node", {})
    cpu = node_stats.get("cpu", {}).get("usageNanoCores")
    if cpu is None:
        cpu = sum(p.get("cpu", {}).get("usageNanoCores", 0) for p in pods)
    memory = node_stats.get("memory", {}).get("workingSetBytes", 0)
    meta = node["metadata"]
    return {"metadata": {"name": meta["name"], "creationTimestamp": now_rfc3339(),
                         "labels": dict(meta.get("labels") or {})},
            "timestamp": node_stats.get("memory", {}).get("time") or now_rfc3339(), "window": WINDOW,
            "usage": {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)}}


def pod_metrics(pod: Obj, stats: Obj) -> Obj:
    meta = pod["metadata"]
    containers = [{"name": c.get("name", ""),
                   "usage": {"cpu": cpu_quantity(c.get("cpu", {}).get("usageNanoCores", 0)),
                             "memory": memory_quantity(c.get("memory", {}).get("workingSetBytes", 0))}}
                  for c in stats.get("containers", [])]
    return {"metadata": {"name": meta["name"], "namespace": meta["namespace"], "creationTimestamp": now_rfc3339(),
                         "labels": dict(meta.get("labels") or {})},
            "timestamp": stats.get("cpu", {}).get("time") or now_rfc3339(), "window": WINDOW,
            "containers": containers}


def _typed(obj: Obj, kind: str) -> Obj:
    return {"kind": kind, "apiVersion": GROUP_VERSION, **obj}


def _list(items: list[Obj], kind: str) -> Obj:
    return {"kind": f"{kind}List", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}


def _not_found(resource: str, name: str) -> ApiError:
    return ApiError(404, f'{resource}.{GROUP} "{name}" not found', "NotFound",
                    details={"name": name, "group": GROUP, "kind": resource})


async def _nodes(state: ServerState, query: Mapping[str, str], name: str | None) -> Response:
    handle = state.registry.handle("nodes")
    if name is not None:
        node = await get_object(handle, None, name)
        summary = (await _summaries(state, [node])).get(name)
        if summary is None:
            raise _not_found("nodes", name)
        return json_response(_typed(node_metrics(node, summary), "NodeMetrics"))
    selection = {k: query[k] for k in ("labelSelector", "fieldSelector") if k in query}
    nodes = (await list_objects(handle, None, selection))["items"]
    summaries = await _summaries(state, nodes)
    items = [node_metrics(n, summaries[n["metadata"]["name"]]) for n in nodes if n["metadata"]["name"] in summaries]
    return json_response(_list(items, "NodeMetrics"))


async def _pods(state: ServerState, query: Mapping[str, str], namespace: str | None, name: str | None) -> Response:
    pods_handle = state.registry.handle("pods")
    if name is not None:
        pods = [await get_object(pods_handle, namespace, name)]
    else:
        selection = {k: query[k] for k in ("labelSelector", "fieldSelector") if k in query}
        pods = (await list_objects(pods_handle, namespace, selection))["items"]
    node_names = {p.get("spec", {}).get("nodeName") for p in pods} - {None, ""}
    nodes = [await get_object(state.registry.handle("nodes"), None, n) for n in sorted(node_names)]
    stats_by_uid: dict[str, Obj] = {}
    for summary in (await _summaries(state, nodes)).values():
        for stats in summary.get("pods", []):
            stats_by_uid[stats.get("podRef", {}).get("uid", "")] = stats
    items = [pod_metrics(p, stats_by_uid[p["metadata"]["uid"]]) for p in pods if p["metadata"]["uid"] in stats_by_uid]
    if name is not None:
        if not items:
            raise _not_found("pods", name)
        return json_response(_typed(items[0], "PodMetrics"))
    return json_response(_list(items, "PodMetrics"))


async def serve(state: ServerState, request: Request, path: str) -> Response:
    """Everything under /apis/metrics.k8s.io: discovery, node and pod metrics (GET only)."""
    parts = path.strip("/").split("/")[2:]  # after apis/metrics.k8s.io
    if not parts:
        return json_response({"kind": "APIGroup", "apiVersion": "v1", **discovery_group()})
    if parts[0] != VERSION:
        raise ApiError(404, "the server could not find the requested resource", "NotFound")
    rest = parts[1:]
    if not rest:
        return json_response({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
                              "resources": RESOURCES})
    if request.method != "GET":
        raise ApiError(405, f"{request.method} is not supported on {GROUP}", "MethodNotAllowed")
    query: dict[str, Any] = dict(request.query_params)
    if rest[0] == "nodes" and len(rest) <= 2:
        return await _nodes(state, query, rest[1] if len(rest) == 2 else None)
    if rest[0] == "pods" and len(rest) == 1:
        return await _pods(state, query, None, None)
    if rest[0] == "namespaces" and len(rest) in (3, 4) and rest[2] == "pods":
        return await _pods(state, query, rest[1], rest[3] if len(rest) == 4 else None)
    raise ApiError(404, "the server could not find the requested resource", "NotFound")
