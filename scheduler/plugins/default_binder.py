"""The default Bind plugin: POST pods/{name}/binding with a core/v1 Binding (Kubernetes' DefaultBinder).

API errors propagate as exceptions so the binding cycle can tell "pod gone" (404) and "already bound" (409)
apart from failures worth retrying.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiokube.api.types import Obj
from scheduler.framework import SUCCESS, Status

if TYPE_CHECKING:
    from aiokube.client import ApiClient

NAME = "DefaultBinder"


def binding_for(pod: Obj, node_name: str) -> Obj:
    meta = pod["metadata"]
    binding_meta: Obj = {"name": meta["name"], "namespace": meta.get("namespace", "default")}
    if meta.get("uid"):
        binding_meta["uid"] = meta["uid"]
    return {"apiVersion": "v1", "kind": "Binding", "metadata": binding_meta,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}


class DefaultBinder:
    name = NAME

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def bind(self, pod: Obj, node_name: str) -> Status:
        meta = pod["metadata"]
        await self.client.create_subresource("pods", meta["name"], "binding", binding_for(pod, node_name),
                                             namespace=meta.get("namespace", "default"))
        return SUCCESS


def new(client: ApiClient) -> DefaultBinder:
    return DefaultBinder(client)
