"""Node lifecycle: notice nodes whose kubelet stopped heartbeating, taint them, evict their pods.

A node's heartbeat is its Lease kube-node-lease/<node> (renewTime) and its Ready condition's
lastHeartbeatTime. When neither changed for the grace period (--node-monitor-grace-period, 40 s) — measured
on this process's clock from when we saw the last change, so clock skew cannot matter — every node condition
becomes Unknown (reason NodeStatusUnknown, "Kubelet stopped posting node status."). The Ready condition picks
the taint key: Unknown → node.kubernetes.io/unreachable, False → node.kubernetes.io/not-ready, True → none, each
with effect NoSchedule (keeps new pods off the node) and NoExecute (evicts the pods there).
Pods on a tainted node are marked not ready and deleted once their toleration of the taint runs out
(tolerationSeconds; pods without a matching toleration get --pod-eviction-timeout, standing in for the
DefaultTolerationSeconds admission) so their controllers recreate them elsewhere.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.client import Result
from controllers.events import emit
from controllers.informers import NODE_INDEX
from controllers.podutil import condition
from controllers.statuswriter import write_status
from controllers.timeutil import Clock, format_time, parse_time, system_clock

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
MANAGED_TAINTS = (UNREACHABLE, NOT_READY)
MANAGED_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass
class _Health:
    signature: tuple[Any, ...]
    observed_at: float


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    operator = toleration.get("operator", "Equal")
    if not toleration.get("key"):
        return operator == "Exists"
    if toleration["key"] != taint.get("key"):
        return False
    return operator == "Exists" or toleration.get("value", "") == taint.get("value", "")


def eviction_delay(pod: Obj, taint: dict[str, Any], default_seconds: float) -> float | None:
    """Seconds after the taint was added at which to evict; None = tolerated forever."""
    matching = [t for t in pod.get("spec", {}).get("tolerations") or [] if tolerates(t, taint)]
    if not matching:
        return default_seconds
    limits = [t.get("tolerationSeconds") for t in matching]
    if any(limit is None for limit in limits):
        return None
    return float(max(0, min(int(limit) for limit in limits if limit is not None)))


def wanted_taint(ready_status: str | None) -> str | None:
    if ready_status == "Unknown":
        return UNREACHABLE
    if ready_status == "False":
        return NOT_READY
    return None


class NodeLifecycleReconciler:
    name = "nodelifecycle"

    def __init__(self, *, client: Any, informers: Any, recorder: Any = None, clock: Clock = system_clock,
                 grace_period: float = 40.0, monitor_period: float = 5.0, eviction_timeout: float = 300.0) -> None:
        self.client = client
        self.nodes = informers.get("nodes")
        self.leases = informers.get("leases")
        self.pods = informers.get("pods")
        self.recorder = recorder
        self.clock = clock
        self.grace_period = grace_period
        self.monitor_period = monitor_period
        self.eviction_timeout = eviction_timeout
        self.health: dict[str, _Health] = {}
        self.queue: Any = None

    @property
    def informers(self) -> list[Any]:
        return [self.nodes, self.leases, self.pods]

    def watch(self, queue: Any) -> None:
        self.queue = queue
        self.nodes.add_handler(on_add=self._enqueue_node, on_update=lambda _o, new: self._enqueue_node(new),
                               on_delete=self._enqueue_node)
        self.leases.add_handler(on_add=self._lease_changed, on_update=lambda _o, new: self._lease_changed(new))
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda _o, new: self._pod_changed(new))

    def _enqueue_node(self, node: Obj) -> None:
        self.queue.add(node["metadata"]["name"])

    def _lease_changed(self, lease: Obj) -> None:
        if lease["metadata"].get("namespace") == LEASE_NAMESPACE:
            self.queue.add(lease["metadata"]["name"])

    def _pod_changed(self, pod: Obj) -> None:
        node = pod.get("spec", {}).get("nodeName")
        if node:
            self.queue.add(node)

    # --- reconcile ----------------------------------------------------------------------------------------
    async def reconcile(self, key: str) -> Result:
        node = self.nodes.store.get(key)
        if node is None:
            self.health.pop(key, None)
            return Result()
        now = self.clock()
        node = await self._update_health(node, now)
        node = await self._sync_taints(node, now)
        wait = await self._evict(node, now)
        recheck = self.monitor_period if wait is None else min(wait, self.monitor_period)
        return Result(requeue_after=recheck)

    def _signature(self, node: Obj) -> tuple[Any, ...]:
        lease = self.leases.store.get(f"{LEASE_NAMESPACE}/{node['metadata']['name']}")
        renew = (lease or {}).get("spec", {}).get("renewTime")
        ready = condition(node, "Ready") or {}
        return (renew, ready.get("lastHeartbeatTime"), ready.get("status"))

    async def _update_health(self, node: Obj, now: float) -> Obj:
        name = node["metadata"]["name"]
        signature = self._signature(node)
        health = self.health.get(name)
        if health is None or health.signature != signature:
            # first sight (e.g. after a leader change) counts as a heartbeat: never judge a node on old data
            self.health[name] = health = _Health(signature, now)
        if now - health.observed_at <= self.grace_period:
            return node
        ready = condition(node, "Ready")
        if ready is not None and ready.get("status") == "Unknown":
            return node
        stamp = format_time(now)
        status = copy.deepcopy(node.get("status") or {})
        conditions = status.get("conditions") or []
        if ready is None:
            conditions.append({"type": "Ready", "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                               "message": "Kubelet never posted node status.",
                               "lastHeartbeatTime": format_time(parse_time(
                                   node["metadata"].get("creationTimestamp")) or now),
                               "lastTransitionTime": stamp})
        for cond in conditions:
            if cond.get("status") != "Unknown":
                cond.update({"status": "Unknown", "reason": "NodeStatusUnknown",
                             "message": "Kubelet stopped posting node status.", "lastTransitionTime": stamp})
        status["conditions"] = conditions
        log.info("node %s: no heartbeat for %.0fs, marking Unknown", name, now - health.observed_at)
        written = await write_status(self.client, "nodes", node, status)
        await emit(self.recorder, node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
        if written is None:
            return node
        self.health[name] = _Health(self._signature(written), health.observed_at)  # our own write is no heartbeat
        return written

    async def _sync_taints(self, node: Obj, now: float) -> Obj:
        ready = condition(node, "Ready")
        wanted = wanted_taint(ready.get("status") if ready else None)
        taints = list(node.get("spec", {}).get("taints") or [])
        kept = [t for t in taints if not (t.get("key") in MANAGED_TAINTS and t.get("effect") in MANAGED_EFFECTS)]
        current = [t for t in taints if t not in kept]
        if wanted is not None:
            # NoSchedule as Kubernetes' taint-nodes-by-condition: pods tolerating the NoExecute taint for a while
            # must still not be scheduled onto the node. NoExecute (timed) drives the eviction below.
            for effect in MANAGED_EFFECTS:
                existing = next((t for t in current if t.get("key") == wanted and t.get("effect") == effect), None)
                fresh = {"key": wanted, "effect": effect}
                if effect == "NoExecute":
                    fresh["timeAdded"] = format_time(now)
                kept.append(existing or fresh)
        if kept == taints:
            return node
        updated = copy.deepcopy(node)
        updated.setdefault("spec", {})["taints"] = kept
        if not kept:
            updated["spec"].pop("taints")
        log.info("node %s: taints now %s", node["metadata"]["name"], [t["key"] for t in kept])
        try:
            result: Obj = await self.client.update("nodes", updated)
        except ApiError as err:
            if err.code == 404:
                return node
            raise
        name = node["metadata"]["name"]
        if name in self.health:
            self.health[name].signature = self._signature(result)
        return result

    async def _evict(self, node: Obj, now: float) -> float | None:
        """Mark pods not ready and delete those whose toleration ran out; seconds until the next one."""
        taint = next((t for t in node.get("spec", {}).get("taints") or []
                      if t.get("key") in MANAGED_TAINTS and t.get("effect") == "NoExecute"), None)
        if taint is None:
            return None
        added = parse_time(taint.get("timeAdded")) or now
        next_wait: float | None = None
        for pod in self.pods.store.by_index(NODE_INDEX, node["metadata"]["name"]):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if taint["key"] == UNREACHABLE:
                await self._mark_not_ready(pod, now)
            delay = eviction_delay(pod, taint, self.eviction_timeout)
            if delay is None:
                continue
            remaining = added + delay - now
            if remaining > 0:
                next_wait = remaining if next_wait is None else min(next_wait, remaining)
                continue
            meta = pod["metadata"]
            log.info("node %s: evicting pod %s/%s", node["metadata"]["name"], meta["namespace"], meta["name"])
            await emit(self.recorder, pod, "Normal", "TaintManagerEviction",
                       f"Marking for deletion Pod {meta['namespace']}/{meta['name']}")
            try:
                await self.client.delete("pods", meta["name"], namespace=meta["namespace"],
                                         preconditions={"uid": meta.get("uid")})
            except ApiError as err:
                if err.code not in (404, 409):
                    raise
        return next_wait

    async def _mark_not_ready(self, pod: Obj, now: float) -> None:
        ready = condition(pod, "Ready")
        if ready is None or ready.get("status") != "True":
            return
        status = copy.deepcopy(pod.get("status") or {})
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Ready":
                cond.update({"status": "False", "lastTransitionTime": format_time(now)})
        await write_status(self.client, "pods", pod, status)
