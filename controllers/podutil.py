"""What controllers need to know about a Pod: active, ready, available, and which to delete first.

Mirrors k8s.io/kubernetes/pkg/controller (FilterActivePods, IsPodAvailable, ActivePodsWithRanks) including the
LogarithmicScaleDown ranking (GA in 1.31): ready times and creation times are compared by the power-of-two bucket
of their age, and pods in the same bucket by uid, so that a scale-down does not always pick the very newest pods
(which skews the survivors towards old ones) but a pseudo-random one among similarly young pods.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from aiokube.api.types import Obj
from controllers.timeutil import parse_time

_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def phase(pod: Obj) -> str:
    return str(pod.get("status", {}).get("phase") or "Pending")


def is_active(pod: Obj) -> bool:
    """Counts towards a controller's replicas: not finished and not being deleted."""
    return phase(pod) not in ("Succeeded", "Failed") and not pod.get("metadata", {}).get("deletionTimestamp")


def condition(obj: Obj, cond_type: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == cond_type:
            return dict(cond)
    return None


def is_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def ready_since(pod: Obj) -> float | None:
    """When the pod last became Ready (its Ready condition's lastTransitionTime), None when not ready."""
    cond = condition(pod, "Ready")
    if not cond or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime"))


def is_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least minReadySeconds (k8s IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + min_ready_seconds <= now


def seconds_until_available(pod: Obj, min_ready_seconds: int, now: float) -> float | None:
    """How long until a ready-but-not-yet-available pod becomes available; None if not applicable."""
    since = ready_since(pod)
    if since is None or min_ready_seconds <= 0:
        return None
    remaining = since + min_ready_seconds - now
    return remaining if remaining > 0 else None


def restart_count(pod: Obj) -> int:
    return max((int(cs.get("restartCount", 0)) for cs in pod.get("status", {}).get("containerStatuses") or []),
               default=0)


DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def deletion_cost(pod: Obj) -> int:
    """The pod-deletion-cost annotation (lower goes first); 0 when absent or not an int32."""
    raw = (pod.get("metadata", {}).get("annotations") or {}).get(DELETION_COST)
    try:
        value = int(str(raw))
    except ValueError:
        return 0
    return value if -(2**31) <= value < 2**31 else 0


def _log_bucket(then: float, now: float) -> int:
    """floor(log2(age in nanoseconds)), -1 for no age: Kubernetes' logarithmicRankDiff buckets."""
    age_ns = (now - then) * 1e9
    return int(math.log2(age_ns)) if age_ns > 0 else -1


def _newer_first(t1: float | None, t2: float | None, pod1: Obj, pod2: Obj, now: float | None) -> int:
    """<0 when pod1 goes first: a missing time first, then the younger (by log bucket when `now` is known)."""
    if not t1 or not t2:
        return -1 if not t1 else 1
    if now is None:
        return -1 if t1 > t2 else 1
    diff = _log_bucket(t1, now) - _log_bucket(t2, now)
    if diff == 0:
        uid1, uid2 = _uid(pod1), _uid(pod2)
        return (uid1 > uid2) - (uid1 < uid2)
    return diff


def _uid(pod: Obj) -> str:
    return str(pod.get("metadata", {}).get("uid") or pod.get("metadata", {}).get("name") or "")


def compare_for_deletion(a: tuple[Obj, int], b: tuple[Obj, int], now: float | None = None) -> int:
    """Kubernetes' ActivePodsWithRanks.Less as a cmp function over (pod, rank); <0 means `a` is deleted first.

    unscheduled < scheduled; Pending < Unknown < Running; not ready < ready; lower pod-deletion-cost first;
    more pods of the same owner on the same node (higher rank) first; ready for a shorter time first; more
    restarts first; newer before older. With `now`, the two time comparisons go by logarithmic age bucket.
    """
    pod1, rank1 = a
    pod2, rank2 = b
    node1, node2 = pod1.get("spec", {}).get("nodeName") or "", pod2.get("spec", {}).get("nodeName") or ""
    if node1 != node2 and (not node1 or not node2):
        return -1 if not node1 else 1
    phase1, phase2 = _PHASE_ORDER.get(phase(pod1), 0), _PHASE_ORDER.get(phase(pod2), 0)
    if phase1 != phase2:
        return phase1 - phase2
    ready1, ready2 = is_ready(pod1), is_ready(pod2)
    if ready1 != ready2:
        return -1 if not ready1 else 1
    cost1, cost2 = deletion_cost(pod1), deletion_cost(pod2)
    if cost1 != cost2:
        return -1 if cost1 < cost2 else 1
    if rank1 != rank2:
        return -1 if rank1 > rank2 else 1
    if ready1 and ready2:
        since1, since2 = ready_since(pod1), ready_since(pod2)
        if since1 != since2:
            return _newer_first(since1, since2, pod1, pod2, now)
    restarts1, restarts2 = restart_count(pod1), restart_count(pod2)
    if restarts1 != restarts2:
        return -1 if restarts1 > restarts2 else 1
    created1 = parse_time(pod1.get("metadata", {}).get("creationTimestamp"))
    created2 = parse_time(pod2.get("metadata", {}).get("creationTimestamp"))
    if created1 != created2:
        return _newer_first(created1, created2, pod1, pod2, now)
    name1, name2 = pod1.get("metadata", {}).get("name", ""), pod2.get("metadata", {}).get("name", "")
    return (name1 > name2) - (name1 < name2)  # Kubernetes stops at "equal"; a total order keeps us deterministic


def pods_to_delete(pods: list[Obj], count: int, now: float | None = None) -> list[Obj]:
    """The `count` pods to delete when scaling down, ranking doubled-up pods (same node) first.

    `now` turns on the logarithmic bucketing of ages (the ReplicaSet controller passes its clock).
    """
    per_node: dict[str, int] = {}
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName") or ""
        per_node[node] = per_node.get(node, 0) + 1

    def rank(pod: Obj) -> int:
        node = pod.get("spec", {}).get("nodeName") or ""
        return per_node.get(node, 0) if node else 0

    def compare(a: tuple[Obj, int], b: tuple[Obj, int]) -> int:
        return compare_for_deletion(a, b, now)

    ranked = [(p, rank(p)) for p in pods]
    return [pod for pod, _ in sorted(ranked, key=functools.cmp_to_key(compare))[:count]]
