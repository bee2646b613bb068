"""The scheduler loop: pop a pending pod → filter → score → select → Reserve (assume) → Bind asynchronously.

Informers on pods, nodes and PriorityClasses feed the cache (bound pods, nodes) and the queue (pending pods of
this scheduler: schedulerName default-scheduler or unset, no nodeName, not terminating). Cluster events that
could make waiting pods fit (node added or changed, a bound pod deleted or relabelled) move them out of the
unschedulable set.

A pod that fits nowhere gets PodScheduled=False/Unschedulable with Kubernetes' message through pods/status and
a Warning FailedScheduling event; PostFilter (preemption) may nominate a node and evict lower-priority pods.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from scheduler.algorithm import Algorithm, FitError
from scheduler.binder import DEFAULT_CONCURRENCY, Binder
from scheduler.cache import SchedulerCache, node_allocatable, node_static_key
from scheduler.event_sink import EventSink
from scheduler.framework import SUCCESS, BindPlugin, CycleState, Plugin, ReservePlugin, Status
from scheduler.plugins import assume_reserve, default_binder, default_preemption
from scheduler.plugins.resources_fit import NOMINATED_KEY
from scheduler.podinfo import PodInfo, pod_info
from scheduler.profile import default_plugins
from scheduler.queue import QueuedPod, SchedulingQueue

if TYPE_CHECKING:
    from aiokube.client import ApiClient, EventRecorder

log = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"
TERMINAL_PHASES = ("Succeeded", "Failed")
STATUS_WRITE_CONCURRENCY = 4
# The pod spec fields PodInfo is parsed from (besides containers, compared separately).
_PARSED_SPEC_FIELDS = ("initContainers", "overhead", "affinity", "priority", "tolerations", "nodeSelector")


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _is_assigned(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def _scheduling_relevant(pod: Obj) -> Any:
    """What a pending pod's update must change to deserve a new scheduling attempt (not our own status writes)."""
    meta = pod.get("metadata") or {}
    return (pod.get("spec"), meta.get("labels"), meta.get("annotations"), meta.get("deletionTimestamp"))


class Scheduler:
    def __init__(self, client: ApiClient, *, watch_client: ApiClient | None = None,
                 recorder: EventRecorder | None = None,
                 clock: Callable[[], float] = time.monotonic, weights: dict[str, int] | None = None,
                 percentage_of_nodes_to_score: int = 0, bind_concurrency: int = DEFAULT_CONCURRENCY,
                 initial_backoff: float = 1.0, max_backoff: float = 10.0, rng: random.Random | None = None,
                 scheduler_name: str = SCHEDULER_NAME, extra_plugins: Sequence[Plugin] = ()) -> None:
        from aiokube.client import EventRecorder

        self.client = client
        # Informers may use a client of their own (the process uses one: ApiClient's lean pool gives every
        # watch its own connection, so watches never crowd the bindings' connections).
        self.watch_client = watch_client or client
        self.scheduler_name = scheduler_name
        self.recorder = recorder or EventRecorder(client, component=scheduler_name,
                                                  max_concurrent_writes=STATUS_WRITE_CONCURRENCY)
        self.events = EventSink(self.recorder, workers=STATUS_WRITE_CONCURRENCY)
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue(clock, initial_backoff=initial_backoff, max_backoff=max_backoff)
        self.plugins = default_plugins(self.cache, weights)
        self.plugins.plugins.extend(extra_plugins)
        # Reserve: the cache assumption first, then any added plugin. Bind: added plugins first (they may SKIP
        # a pod), the pods/binding POST last, as in Kubernetes' default profile.
        self.reserve_plugins: list[ReservePlugin] = [assume_reserve.new(self.cache), *self.plugins.of(ReservePlugin)]
        bind_plugins: list[BindPlugin] = [*self.plugins.of(BindPlugin), default_binder.new(client)]
        self.algorithm = Algorithm(self.cache, self.plugins, percentage_of_nodes_to_score=percentage_of_nodes_to_score,
                                   rng=rng)
        self.preemption = default_preemption.new(self.cache, self._check_node, self._evict)
        self.binder = Binder(bind_plugins, on_bound=self._on_bound, on_failed=self._on_bind_failed,
                             concurrency=bind_concurrency)
        self.priority_classes: dict[str, Obj] = {}
        self.nominated: dict[str, dict[str, PodInfo]] = {}  # node -> pods nominated there by preemption
        self._nominated_node: dict[str, str] = {}  # pod key -> node
        self._bound_by_us: set[str] = set()
        # Pods in their binding cycle, with the cycle state Unreserve needs and the attempt count for backoff.
        self._binding: dict[str, tuple[QueuedPod, CycleState]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        # Status writes beyond binding share a small budget: a long queue of requests inside httpx's
        # connection pool costs CPU per queued request, and these writes are not on the critical path.
        self._status_writes = asyncio.Semaphore(STATUS_WRITE_CONCURRENCY)
        self.scheduled = 0  # pods sent to binding (for the benchmark and logs)

    # ---- priority -----------------------------------------------------------------------------------------
    def priority_of(self, pod: Obj) -> int:
        """spec.priority, else the PriorityClass named by priorityClassName, else the global default, else 0
        (what Kubernetes' Priority admission writes; done here when the API server did not)."""
        spec = pod.get("spec") or {}
        if spec.get("priority") is not None:
            return int(spec["priority"])
        name = spec.get("priorityClassName")
        if name and name in self.priority_classes:
            return int(self.priority_classes[name].get("value", 0))
        for pc in self.priority_classes.values():
            if pc.get("globalDefault"):
                return int(pc.get("value", 0))
        return 0

    def _info(self, pod: Obj) -> PodInfo:
        return pod_info(pod, self.priority_of(pod))

    def _bound_info(self, old: Obj, new: Obj, key: str) -> PodInfo:
        """PodInfo for a bound pod's update, reusing the cached parse when nothing it depends on changed.

        Every bind confirmation and kubelet status write lands here; re-parsing quantities for each costs more
        than the rest of the update. Requests, ports, affinity and priority live in fields that are immutable
        once the pod exists, but the containers are compared anyway (in-place resize may change them)."""
        cached = self.cache.pod_info_of(key)
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if (cached is None or self.cache.node_of(key) != new_spec.get("nodeName")
                or any(old_spec.get(f) != new_spec.get(f) for f in _PARSED_SPEC_FIELDS)
                or cached.pod.get("spec", {}).get("containers") != new_spec.get("containers")):
            return self._info(new)
        return replace(cached, pod=new, labels=dict(new["metadata"].get("labels") or {}))

    def responsible_for(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return ((spec.get("schedulerName") or SCHEDULER_NAME) == self.scheduler_name
                and not spec.get("nodeName") and not pod["metadata"].get("deletionTimestamp")
                and not _is_terminal(pod))

    # ---- informer handlers: pods --------------------------------------------------------------------------
    def on_pod_add(self, pod: Obj) -> None:
        if _is_assigned(pod):
            if not _is_terminal(pod):
                self.cache.add_or_update_pod(self._info(pod))
        elif self.responsible_for(pod):
            info = self._info(pod)
            self._track_nomination(info)
            self.queue.add(info)

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        key = f"{new['metadata'].get('namespace', 'default')}/{new['metadata']['name']}"
        if _is_assigned(new):
            self.queue.delete(key)
            self._untrack_nomination(key)
            if _is_terminal(new):
                if self.cache.remove_pod(key) is not None:
                    self.queue.move_all()
                return
            self.cache.add_or_update_pod(self._bound_info(old, new, key))
            if _is_assigned(old) and (old["metadata"].get("labels") != new["metadata"].get("labels")):
                self.queue.move_all()
            if key in self._bound_by_us:
                self._bound_by_us.discard(key)
                self._ensure_scheduled_condition(new)
            return
        if not self.responsible_for(new):
            self.queue.delete(key)
            self._untrack_nomination(key)
            return
        info = self._info(new)
        self._track_nomination(info)
        if _scheduling_relevant(old) != _scheduling_relevant(new):
            self.queue.update(info)
        elif key in self.queue:
            self.queue.refresh(info)
        else:
            self.queue.add(info)

    def on_pod_delete(self, pod: Obj) -> None:
        key = f"{pod['metadata'].get('namespace', 'default')}/{pod['metadata']['name']}"
        self.queue.delete(key)
        self._untrack_nomination(key)
        if self.cache.remove_pod(key) is not None:
            self.queue.move_all()  # freed resources, ports, anti-affinity: anyone may fit now

    # ---- informer handlers: nodes and priority classes ----------------------------------------------------
    def on_node_add(self, node: Obj) -> None:
        self.cache.set_node(node)
        self.queue.move_all()

    def on_node_update(self, old: Obj, new: Obj) -> None:
        self.cache.set_node(new)
        # Heartbeats change only status conditions; only a change that could admit more pods moves them.
        grew = any(b > a for a, b in zip(node_allocatable(old), node_allocatable(new), strict=True))
        if grew or node_static_key(old) != node_static_key(new):
            self.queue.move_all()

    def on_node_delete(self, node: Obj) -> None:
        self.cache.remove_node(node["metadata"]["name"])

    def on_priority_class(self, pc: Obj) -> None:
        self.priority_classes[pc["metadata"]["name"]] = pc

    def on_priority_class_update(self, old: Obj, new: Obj) -> None:
        self.on_priority_class(new)

    def on_priority_class_delete(self, pc: Obj) -> None:
        self.priority_classes.pop(pc["metadata"]["name"], None)

    # ---- nominations (preemption) -------------------------------------------------------------------------
    def _track_nomination(self, info: PodInfo) -> None:
        node = (info.pod.get("status") or {}).get("nominatedNodeName") or ""
        if self._nominated_node.get(info.key) == node and node:
            self.nominated[node][info.key] = info
            return
        self._untrack_nomination(info.key)
        if node:
            self._nominated_node[info.key] = node
            self.nominated.setdefault(node, {})[info.key] = info

    def _untrack_nomination(self, key: str) -> None:
        node = self._nominated_node.pop(key, None)
        if node is not None:
            pods = self.nominated.get(node, {})
            pods.pop(key, None)
            if not pods:
                self.nominated.pop(node, None)

    def _nominated_requests(self, pod: PodInfo) -> dict[int, list[int]]:
        """Room held on nodes for nominated pods at least as important as `pod` (so it cannot take it)."""
        extra: dict[int, list[int]] = {}
        for node, pods in self.nominated.items():
            info = self.cache.nodes.get(node)
            if info is None:
                continue
            for other in pods.values():
                if other.key != pod.key and other.priority >= pod.priority:
                    row = extra.setdefault(info.row, [0, 0, 0, 0])
                    for i, value in enumerate(other.requests):
                        row[i] += value
        return extra

    # ---- one scheduling cycle -----------------------------------------------------------------------------
    async def schedule_one(self, qp: QueuedPod) -> None:
        pod = qp.info
        state = CycleState()
        if self.nominated:
            state[NOMINATED_KEY] = self._nominated_requests(pod)
        nominated_node = self._nominated_node.get(pod.key, "")
        try:
            node = self.algorithm.schedule(state, pod, nominated_node)
        except FitError as fit:
            await self._handle_fit_error(qp, state, fit)
            return
        except Exception as exc:  # a plugin bug must not stop the scheduler; retry with backoff
            log.exception("scheduling %s failed", pod.key)
            self.queue.add_backoff(qp)
            self.events.emit(pod.pod, "Warning", "FailedScheduling", str(exc))
            return
        reserved = self._reserve(state, pod, node)
        if not reserved.is_success:
            log.info("reserving %s on %s failed: %s", pod.key, node, reserved.message)
            self.queue.add_backoff(qp)
            self.events.emit(pod.pod, "Warning", "FailedScheduling", f"Reserve rejected: {reserved.message}")
            return
        self.queue.done(pod.key)
        self._untrack_nomination(pod.key)
        self.scheduled += 1
        self._binding[pod.key] = (qp, state)
        self.binder.start(pod.pod, node)

    def _reserve(self, state: CycleState, pod: PodInfo, node: str) -> Status:
        """Every Reserve plugin in order; on the first failure all of them are unreserved (Kubernetes calls
        Unreserve on every Reserve plugin, in reverse order, even those that never reserved)."""
        for plugin in self.reserve_plugins:
            try:
                status = plugin.reserve(state, pod, node)
            except Exception as exc:  # a buggy plugin is an error for this pod, not for the scheduler
                status = Status.error(str(exc), plugin.name)
            if not status.is_success:
                self._unreserve(state, pod, node)
                return status if status.plugin else Status(status.code, status.reasons, plugin.name)
        return SUCCESS

    def _unreserve(self, state: CycleState, pod: PodInfo, node: str) -> None:
        for plugin in reversed(self.reserve_plugins):
            try:
                plugin.unreserve(state, pod, node)
            except Exception:  # the remaining plugins must still release what they hold
                log.exception("unreserve of %s by %s failed", pod.key, plugin.name)

    async def _handle_fit_error(self, qp: QueuedPod, state: CycleState, fit: FitError) -> None:
        pod = qp.info
        nominated: str | None = None
        if fit.statuses:
            try:
                nominated, status = await self.preemption.post_filter(state, pod, fit.statuses)
                if not status.is_success:
                    fit.post_filter_message = status.message
            except Exception:
                log.exception("preemption for %s failed", pod.key)
        message = fit.message()
        log.info("pod %s is unschedulable: %s", pod.key, message)
        self.queue.add_unschedulable(qp)
        self.events.emit(pod.pod, "Warning", "FailedScheduling", message)
        self._spawn(self._write_unschedulable(pod.pod, message, nominated))

    def _check_node(self, state: CycleState, pod: PodInfo, node: Any) -> Any:
        """All filters for `pod` on a what-if copy of a node (preemption). PreFilter data (affinity counts) is
        recomputed from the cache, so victims still count there: preemption resolves resource and port
        conflicts, not inter-pod (anti-)affinity ones."""
        fresh = state.clone()
        skipped, _ = self.algorithm.pre_filter(fresh, pod)
        return self.algorithm.run_filters(fresh, pod, node, skipped)

    async def _evict(self, pod: PodInfo, node: str, victims: list[PodInfo]) -> None:
        """Nominate `node` for `pod` and delete the victims gracefully (their kubelet stops them)."""
        nominated_copy = {**pod.pod, "status": {**(pod.pod.get("status") or {}), "nominatedNodeName": node}}
        self._track_nomination(replace(pod, pod=nominated_copy))
        for victim in victims:
            try:
                await self.client.delete("pods", victim.name, namespace=victim.namespace)
            except ApiError as exc:
                if exc.code != 404:
                    raise
            uid = pod.pod["metadata"].get("uid", "")
            self.events.emit(victim.pod, "Normal", "Preempted", f"Preempted by pod {uid} on node {node}")

    async def _write_unschedulable(self, pod: Obj, message: str, nominated: str | None) -> None:
        status = pod.get("status") or {}
        current: Obj = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
        patch_status: Obj = {}
        if (current.get("status"), current.get("reason"), current.get("message")) != (
                "False", "Unschedulable", message):
            patch_status["conditions"] = [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": current.get("lastTransitionTime") if current.get("status") == "False"
                else _utc_now()}]
        if nominated and status.get("nominatedNodeName") != nominated:
            patch_status["nominatedNodeName"] = nominated
        if not patch_status:
            return
        meta = pod["metadata"]
        try:
            async with self._status_writes:
                await self.client.patch("pods", meta["name"], {"status": patch_status},
                                        namespace=meta.get("namespace"), patch_type="strategic", subresource="status")
        except ApiError as exc:
            log.info("writing PodScheduled=False for %s failed: %s", meta["name"], exc)

    def _ensure_scheduled_condition(self, pod: Obj) -> None:
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "PodScheduled" and c.get("status") == "True" for c in conditions):
            return  # the API server's binding already set it (as Kubernetes' does)
        meta = pod["metadata"]
        patch = {"status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                                            "lastTransitionTime": _utc_now()}]}}
        self._spawn(self._patch_status(meta, patch))

    async def _patch_status(self, meta: Obj, patch: Obj) -> None:
        async with self._status_writes:
            await self.client.patch("pods", meta["name"], patch, namespace=meta.get("namespace"),
                                    patch_type="strategic", subresource="status")

    # ---- binding outcomes ---------------------------------------------------------------------------------
    def _on_bound(self, pod: Obj, node: str) -> None:
        meta = pod["metadata"]
        key = f"{meta.get('namespace', 'default')}/{meta['name']}"
        self._binding.pop(key, None)
        self._bound_by_us.add(key)
        current = self.cache.nodes.get(node)
        if current is not None and key in current.pods and not self.cache.is_assumed(key):
            # The informer's event already arrived before the binding response.
            self._bound_by_us.discard(key)
            self._ensure_scheduled_condition(current.pods[key].pod)
        self.events.emit(pod, "Normal", "Scheduled", f"Successfully assigned {key} to {node}")

    def _on_bind_failed(self, pod: Obj, node: str, exc: Exception) -> None:
        meta = pod["metadata"]
        key = f"{meta.get('namespace', 'default')}/{meta['name']}"
        binding = self._binding.pop(key, None)
        qp, state = binding if binding is not None else (None, CycleState())
        self._unreserve(state, qp.info if qp is not None else self._info(pod), node)
        self.cache.forget(key)  # also when the pod was not ours to track (e.g. a cycle from before a restart)
        if isinstance(exc, ApiError) and exc.code == 404:
            return  # the pod is gone
        if isinstance(exc, ApiError) and exc.code == 409 and "already" in exc.message:
            return  # someone bound it; the informer will show where
        if qp is None:
            qp = QueuedPod(info=self._info(pod), timestamp=self.queue.clock(), attempts=1)
        self.queue.add_backoff(qp)
        self.events.emit(pod, "Warning", "FailedScheduling", f"Binding rejected: {exc}")
        self.queue.move_all()  # the assumed resources are free again

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    # ---- running ------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Start informers, wait for their caches, then schedule until cancelled."""
        from aiokube.client import Informer

        pcs = Informer(self.watch_client, "priorityclasses")
        pcs.add_handler(on_add=self.on_priority_class, on_update=self.on_priority_class_update,
                        on_delete=self.on_priority_class_delete)
        nodes = Informer(self.watch_client, "nodes")
        nodes.add_handler(on_add=self.on_node_add, on_update=self.on_node_update, on_delete=self.on_node_delete)
        pods = Informer(self.watch_client, "pods")
        pods.add_handler(on_add=self.on_pod_add, on_update=self.on_pod_update, on_delete=self.on_pod_delete)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(pcs.run())
                await pcs.wait_synced()  # priorities must be known before pods are queued
                group.create_task(nodes.run())
                await nodes.wait_synced()
                group.create_task(pods.run())
                await pods.wait_synced()
                log.info("caches synced: %d nodes, %d pending pods", self.cache.node_count, len(self.queue))
                # The synced caches are millions of long-lived objects; each full collection would walk them
                # all for nothing. Freezing moves them out of the collector's view (they are freed normally
                # by reference counting when deleted).
                gc.collect()
                gc.freeze()
                while True:
                    qp = await self.queue.pop()
                    try:
                        await self.schedule_one(qp)
                    except Exception:  # one bad pod must not stop scheduling for everyone
                        log.exception("scheduling cycle for %s crashed; retrying it with backoff", qp.key)
                        self.cache.forget(qp.key)
                        self.queue.add_backoff(qp)
                    # Let informer events and binding responses in between pods so the cache stays fresh.
                    await asyncio.sleep(0)
        finally:
            await self.binder.aclose()
            await self.events.aclose()
            for task in list(self._background):
                task.cancel()


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("background request failed: %r", task.exception())
