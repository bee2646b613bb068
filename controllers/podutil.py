"""What controllers need to know about a Pod: active, ready, available, and which to delete first.

Mirrors k8s.io/kubernetes/pkg/controller (FilterActivePods, IsPodAvailable, ActivePodsWithRanks) without the
logarithmic scale-down bucketing: plain "newer before older" comparisons are deterministic and testable.
"""

from __future__ import annotations

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


def deletion_sort_key(pod: Obj, rank: int = 0) -> tuple[Any, ...]:
    """Sort ascending = delete first (k8s ActivePodsWithRanks.Less, minus log-scale bucketing).

    unscheduled < scheduled; Pending < Unknown < Running; not ready < ready; more pods of the same owner on the
    same node (higher rank) first; ready for a shorter time first; more restarts first; newer before older.
    """
    scheduled = 1 if pod.get("spec", {}).get("nodeName") else 0
    ready = 1 if is_ready(pod) else 0
    since = ready_since(pod) or 0.0
    created = parse_time(pod.get("metadata", {}).get("creationTimestamp")) or 0.0
    return (
        scheduled,
        _PHASE_ORDER.get(phase(pod), 0),
        ready,
        -rank,
        -since,  # became ready later = ready for less time = deleted first
        -restart_count(pod),
        -created,  # newer first
        pod.get("metadata", {}).get("name", ""),  # a total order keeps choices deterministic
    )


def pods_to_delete(pods: list[Obj], count: int) -> list[Obj]:
    """The `count` pods to delete when scaling down, ranking doubled-up pods (same node) first."""
    per_node: dict[str, int] = {}
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName") or ""
        per_node[node] = per_node.get(node, 0) + 1

    def rank(pod: Obj) -> int:
        node = pod.get("spec", {}).get("nodeName") or ""
        return per_node.get(node, 0) if node else 0

    return sorted(pods, key=lambda p: deletion_sort_key(p, rank(p)))[:count]
