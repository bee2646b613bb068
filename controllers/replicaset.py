"""ReplicaSet controller: keep spec.replicas active pods matching the selector, and report status.

reconcile(key): claim pods (adopt orphans, release non-matching), then, if the expectations of the previous
round were observed, create pods in slow-start batches (1, 2, 4, …) or delete the most deletable ones, and write
status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas, observedGeneration, ReplicaFailure)
through replicasets/status when it changed. Pods being deleted or finished do not count.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.client import Result
from controllers.events import emit
from controllers.expectations import Expectations
from controllers.informers import in_namespace
from controllers.labels import selector_matches
from controllers.ownerrefs import controller_of, controller_ref_for, object_key, split_key
from controllers.ownership import claim
from controllers.podutil import (
    condition,
    is_active,
    is_available,
    is_ready,
    pods_to_delete,
    seconds_until_available,
)
from controllers.statuswriter import write_status
from controllers.timeutil import Clock, format_time, system_clock

log = logging.getLogger(__name__)

# Kubernetes caps one round of creates/deletes (BurstReplicas) so a huge scale-up cannot flood the API server;
# the rest happens in following rounds once the expectations are observed.
BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH = 1


async def slow_start_batch(count: int, initial: int,
                           action: Callable[[], Awaitable[None]]) -> tuple[int, Exception | None]:
    """Run `action` count times in batches doubling from `initial`; stop after the first failing batch.

    A failure that repeats (quota, admission) then costs one call per round, not `count` calls.
    """
    done, batch = 0, min(count, initial)
    while batch > 0:
        results = await asyncio.gather(*(action() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        done += batch - len(errors)
        if errors:
            first = errors[0]
            if not isinstance(first, Exception):
                raise first
            return done, first
        remaining = count - done
        batch = min(2 * batch, remaining)
    return done, None


def pod_from_template(owner: Obj) -> Obj:
    template = copy.deepcopy(owner["spec"].get("template") or {})
    tmeta = template.get("metadata") or {}
    meta: dict[str, Any] = {
        "generateName": f"{owner['metadata']['name']}-",
        "namespace": owner["metadata"]["namespace"],
        "ownerReferences": [controller_ref_for(owner)],
    }
    for field in ("labels", "annotations", "finalizers"):
        if tmeta.get(field):
            meta[field] = tmeta[field]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec") or {}}


def calculate_status(rs: Obj, pods: list[Obj], manage_error: Exception | None, diff: int, now: float) -> dict[str, Any]:
    spec = rs.get("spec", {})
    min_ready = int(spec.get("minReadySeconds") or 0)
    template_labels = (spec.get("template") or {}).get("metadata", {}).get("labels") or {}
    status: dict[str, Any] = {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(
            1 for p in pods
            if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in template_labels.items())),
        "readyReplicas": sum(1 for p in pods if is_ready(p)),
        "availableReplicas": sum(1 for p in pods if is_available(p, min_ready, now)),
        "observedGeneration": rs.get("metadata", {}).get("generation", 0),
    }
    conditions = [c for c in rs.get("status", {}).get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    failure = condition(rs, "ReplicaFailure")
    if manage_error is not None and failure is None:
        reason = "FailedCreate" if diff < 0 else "FailedDelete"
        failure = {"type": "ReplicaFailure", "status": "True", "reason": reason,
                   "message": str(manage_error), "lastTransitionTime": format_time(now)}
    if manage_error is not None and failure is not None:
        conditions.append(failure)
    if conditions:
        status["conditions"] = conditions
    return status


_STATUS_FIELDS = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration")


def status_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    if any(int(old.get(f) or 0) != int(new.get(f) or 0) for f in _STATUS_FIELDS):
        return True
    return (old.get("conditions") or []) != (new.get("conditions") or [])


class ReplicaSetReconciler:
    name = "replicaset"

    def __init__(self, *, client: Any, informers: Any, recorder: Any = None, clock: Clock = system_clock,
                 expectations: Expectations | None = None, burst_replicas: int = BURST_REPLICAS) -> None:
        self.client = client
        self.replicasets = informers.get("replicasets")
        self.pods = informers.get("pods")
        self.recorder = recorder
        self.clock = clock
        self.expectations = expectations or Expectations(clock=clock)
        self.burst_replicas = burst_replicas
        self.queue: Any = None

    @property
    def informers(self) -> list[Any]:
        return [self.replicasets, self.pods]

    # --- events -> keys -----------------------------------------------------------------------------------
    def watch(self, queue: Any) -> None:
        self.queue = queue
        self.replicasets.add_handler(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new),
                                     on_delete=self._enqueue)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)

    def _enqueue(self, rs: Obj) -> None:
        self.queue.add(object_key(rs))

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        key = f"{pod['metadata']['namespace']}/{ref.get('name')}"
        rs = self.replicasets.store.get(key)
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return None
        return key

    def _enqueue_matching(self, pod: Obj) -> None:
        """An orphan: any ReplicaSet whose selector matches may adopt it."""
        labels = pod["metadata"].get("labels") or {}
        for rs in in_namespace(self.replicasets, pod["metadata"]["namespace"]):
            if selector_matches(rs.get("spec", {}).get("selector"), labels):
                self._enqueue(rs)

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif controller_of(pod) is None:
            self._enqueue_matching(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp"):
            key = self._owner_key(new)
            if key is not None:
                self.expectations.deletion_observed(key, object_key(new))
        old_key, new_key = self._owner_key(old), self._owner_key(new)
        if old_key and old_key != new_key:
            self.queue.add(old_key)
        if new_key:
            self.queue.add(new_key)
            rs = self.replicasets.store.get(new_key)
            min_ready = int((rs or {}).get("spec", {}).get("minReadySeconds") or 0)
            if min_ready and is_ready(new) and not is_ready(old):
                self.queue.add_after(new_key, min_ready + 0.5)  # when it will have become available
        elif controller_of(new) is None and (old["metadata"].get("labels") != new["metadata"].get("labels")
                                             or controller_of(old) is not None):
            self._enqueue_matching(new)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    # --- reconcile ----------------------------------------------------------------------------------------
    async def reconcile(self, key: str) -> Result:
        rs = self.replicasets.store.get(key)
        if rs is None:
            self.expectations.forget(key)
            return Result()
        namespace, name = split_key(key)
        needs_sync = self.expectations.satisfied(key)
        active = [p for p in in_namespace(self.pods, namespace or "") if is_active(p)]

        async def fresh_owner() -> Obj | None:
            try:
                fresh: Obj = await self.client.get("replicasets", name, namespace=namespace)
                return fresh
            except ApiError as err:
                if err.code == 404:
                    return None
                raise

        pods = await claim(self.client, "pods", rs, rs["spec"].get("selector"), active, fresh_owner)
        manage_error: Exception | None = None
        diff = len(pods) - int(rs["spec"].get("replicas", 1))
        if needs_sync and not rs["metadata"].get("deletionTimestamp"):
            manage_error = await self._manage_replicas(key, rs, pods, diff)

        now = self.clock()
        status = calculate_status(rs, pods, manage_error, diff, now)
        if status_changed(rs.get("status") or {}, status):
            await write_status(self.client, "replicasets", rs, status)
        if manage_error is not None:
            raise manage_error
        return Result(requeue_after=self._recheck_availability(rs, pods, now))

    def _recheck_availability(self, rs: Obj, pods: list[Obj], now: float) -> float | None:
        min_ready = int(rs["spec"].get("minReadySeconds") or 0)
        waits = [w for p in pods if (w := seconds_until_available(p, min_ready, now)) is not None]
        return min(waits) + 0.5 if waits else None  # timestamps have 1 s resolution; land just after

    async def _manage_replicas(self, key: str, rs: Obj, pods: list[Obj], diff: int) -> Exception | None:
        if diff < 0:
            count = min(-diff, self.burst_replicas)
            self.expectations.expect_creations(key, count)
            log.info("replicaset %s: %d pods for %d wanted; creating %d", key, len(pods), len(pods) - diff, count)
            body = pod_from_template(rs)

            async def create_one() -> None:
                try:
                    pod = await self.client.create("pods", copy.deepcopy(body), namespace=rs["metadata"]["namespace"])
                except ApiError as err:
                    await emit(self.recorder, rs, "Warning", "FailedCreate", f"Error creating: {err.message}")
                    raise
                await emit(self.recorder, rs, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

            created, error = await slow_start_batch(count, SLOW_START_INITIAL_BATCH, create_one)
            for _ in range(count - created):
                self.expectations.creation_observed(key)  # never coming: don't wait for them
            return error
        if diff > 0:
            victims = pods_to_delete(pods, min(diff, self.burst_replicas), now=self.clock())
            log.info("replicaset %s: %d pods for %d wanted; deleting %s (ready: %s)", key, len(pods),
                     len(pods) - diff, [p["metadata"]["name"] for p in victims], [is_ready(p) for p in victims])
            self.expectations.expect_deletions(key, [object_key(p) for p in victims])
            results = await asyncio.gather(*(self._delete_pod(key, rs, p) for p in victims))
            errors = [e for e in results if e is not None]
            return errors[0] if errors else None
        return None

    async def _delete_pod(self, key: str, rs: Obj, pod: Obj) -> Exception | None:
        meta = pod["metadata"]
        try:
            await self.client.delete("pods", meta["name"], namespace=meta["namespace"],
                                     preconditions={"uid": meta.get("uid")})
        except ApiError as err:
            if err.code == 404:
                self.expectations.deletion_observed(key, object_key(pod))
                return None
            self.expectations.deletion_observed(key, object_key(pod))
            await emit(self.recorder, rs, "Warning", "FailedDelete", f"Error deleting: {err.message}")
            return err
        await emit(self.recorder, rs, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")
        return None
