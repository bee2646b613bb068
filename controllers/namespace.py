"""Namespace lifecycle: empty a namespace being deleted, then release it via namespaces/{name}/finalize.

A namespace with deletionTimestamp and the `kubernetes` finalizer in spec.finalizers gets every namespaced
resource in the registry deleted; the deletion conditions Kubernetes reports (NamespaceContentRemaining …)
are kept in its status. When nothing is left the `kubernetes` finalizer is removed through the finalize
subresource and the API server deletes the namespace. Objects still terminating (graceful pods, finalizers)
are waited for by requeueing.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.resources import RESOURCES, ResourceInfo, lookup
from aiokube.api.types import Obj
from aiokube.client import Result, error_from_response
from controllers.garbagecollector import resource_name
from controllers.statuswriter import write_status
from controllers.timeutil import Clock, format_time, system_clock

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
# How soon to look again while content is still terminating (Kubernetes estimates from grace periods; a short
# fixed poll is simpler and cheap: one list per resource).
RECHECK_SECONDS = 1.0


def deletable_resources() -> list[ResourceInfo]:
    return [r for r in RESOURCES if r.namespaced and "list" in r.verbs and "delete" in r.verbs]


def deletion_conditions(remaining: dict[str, int], finalizers: dict[str, int], failures: list[str],
                        now: float) -> list[dict[str, Any]]:
    stamp = format_time(now)

    def cond(cond_type: str, status: bool, reason: str, message: str) -> dict[str, Any]:
        return {"type": cond_type, "status": "True" if status else "False", "lastTransitionTime": stamp,
                "reason": reason, "message": message}

    content = ", ".join(f"{r} has {n} resource instances" for r, n in sorted(remaining.items()))
    pending = ", ".join(f"{f} in {n} resource instances" for f, n in sorted(finalizers.items()))
    return [
        cond("NamespaceDeletionDiscoveryFailure", False, "ResourcesDiscovered",
             "All resources successfully discovered"),
        cond("NamespaceDeletionGroupVersionParsingFailure", False, "ParsedGroupVersions",
             "All legacy kube types successfully parsed"),
        cond("NamespaceDeletionContentFailure", bool(failures),
             "ContentDeletionFailed" if failures else "ContentDeleted",
             "; ".join(failures) if failures else "All content successfully deleted, may be waiting on finalization"),
        cond("NamespaceContentRemaining", bool(remaining), "SomeResourcesRemain" if remaining else "ContentRemoved",
             f"Some resources are remaining: {content}" if remaining else "All content successfully removed"),
        cond("NamespaceFinalizersRemaining", bool(finalizers),
             "SomeFinalizersRemain" if finalizers else "ContentHasNoFinalizers",
             f"Some content in the namespace has finalizers remaining: {pending}" if finalizers
             else "All content-preserving finalizers finished"),
    ]


def _same_conditions(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> bool:
    def strip(conds: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in conds]

    return strip(old) == strip(new)


class NamespaceReconciler:
    name = "namespace"

    def __init__(self, *, client: Any, informers: Any, clock: Clock = system_clock) -> None:
        self.client = client
        self.namespaces = informers.get("namespaces")
        self.clock = clock
        self.queue: Any = None

    @property
    def informers(self) -> list[Any]:
        return [self.namespaces]

    def watch(self, queue: Any) -> None:
        self.queue = queue
        self.namespaces.add_handler(on_add=self._enqueue, on_update=lambda _o, new: self._enqueue(new))

    def _enqueue(self, ns: Obj) -> None:
        if ns["metadata"].get("deletionTimestamp"):
            self.queue.add(ns["metadata"]["name"])

    async def reconcile(self, key: str) -> Result:
        ns = self.namespaces.store.get(key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return Result()
        if FINALIZER not in (ns.get("spec", {}).get("finalizers") or []):
            return Result()
        remaining, finalizers, failures = await self._delete_content(key)
        conditions = deletion_conditions(remaining, finalizers, failures, self.clock())
        status = dict(ns.get("status") or {})
        status.setdefault("phase", "Terminating")
        if not _same_conditions(status.get("conditions") or [], conditions):
            status["conditions"] = conditions
            written = await write_status(self.client, "namespaces", ns, status)
            ns = written or ns
        if remaining or failures:
            return Result(requeue_after=RECHECK_SECONDS)
        await self._finalize(ns)
        return Result()

    async def _delete_content(self, namespace: str) -> tuple[dict[str, int], dict[str, int], list[str]]:
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        failures: list[str] = []
        for info in deletable_resources():
            name = resource_name(info)
            try:
                items = (await self.client.list(name, namespace=namespace)).get("items") or []
            except ApiError as err:
                if err.code in (404, 405):
                    continue  # not served by this API server
                failures.append(f"listing {info.plural}: {err.message}")
                continue
            for obj in items:
                meta = obj.get("metadata", {})
                for finalizer in meta.get("finalizers") or []:
                    finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
                if meta.get("deletionTimestamp"):
                    continue
                try:
                    await self.client.delete(name, meta["name"], namespace=namespace,
                                             propagation_policy="Background")
                except ApiError as err:
                    if err.code != 404:
                        failures.append(f"deleting {info.plural} {meta['name']}: {err.message}")
            if items:
                left = (await self.client.list(name, namespace=namespace)).get("items") or []
                if left:
                    remaining[f"{info.plural}.{info.group}" if info.group else info.plural] = len(left)
        return remaining, finalizers, failures

    async def _finalize(self, ns: Obj) -> None:
        body = {**ns, "spec": {**(ns.get("spec") or {}),
                               "finalizers": [f for f in ns.get("spec", {}).get("finalizers") or []
                                              if f != FINALIZER]}}
        info = lookup("namespaces")
        response = await self.client.request("PUT", info.path(None, ns["metadata"]["name"], "finalize"), json=body)
        if response.status_code == 404:
            return
        if not response.is_success:
            raise error_from_response(response)
        log.info("namespace %s: content deleted, finalized", ns["metadata"]["name"])
