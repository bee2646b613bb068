"""The pure arithmetic and bookkeeping of Deployments (k8s pkg/controller/deployment/util), no I/O.

Rolling-update fenceposts (maxSurge rounds up, maxUnavailable rounds down), the pod-template-hash, revision
annotations, proportional scaling shares, the status computed from ReplicaSets and the Progressing/Available
conditions. The controller in deployment.py decides when to apply them.
"""

from __future__ import annotations

import copy
import json
import math
import struct
from typing import Any

from aiokube.api.types import Obj
from controllers.timeutil import format_time, parse_time

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
# Annotations the Deployment owns on its ReplicaSets; never copied from the Deployment itself.
_NOT_COPIED = {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
MAX_REV_HISTORY_CHARS = 2000

# Condition reasons, as `kubectl rollout status` and `describe` read them.
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_CREATED = "NewReplicaSetCreated"
FAILED_RS_CREATE = "ReplicaSetCreateError"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_MAX_INT32 = 2**31 - 1
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery rand.SafeEncodeString: no vowels, no 0/1/3


# --- intstr and fenceposts -----------------------------------------------------------------------------------
def resolve_int_or_percent(value: int | str | None, total: int, *, round_up: bool, default: int | str = 0) -> int:
    if value is None:
        value = default
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        scaled = int(text[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(text)


def replicas_of(obj: Obj) -> int:
    value = obj.get("spec", {}).get("replicas")
    return 1 if value is None else int(value)


def is_rolling(d: Obj) -> bool:
    return (d["spec"].get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) for a RollingUpdate deployment; both 0 would deadlock, so unavailable is 1."""
    rolling = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas_of(d)
    surge = resolve_int_or_percent(rolling.get("maxSurge"), desired, round_up=True, default="25%")
    unavailable = resolve_int_or_percent(rolling.get("maxUnavailable"), desired, round_up=False, default="25%")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return resolve_fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or replicas_of(d) == 0:
        return 0
    return min(resolve_fenceposts(d)[1], replicas_of(d))


# --- template hash -------------------------------------------------------------------------------------------
def _fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def compute_hash(template: Obj, collision_count: int | None) -> str:
    """A stable, name-safe hash of the pod template (+ collisionCount to escape a name collision).

    Kubernetes hashes Go's printed struct; we hash canonical JSON (sorted keys), so hashes are stable across
    processes and releases of this project but not equal to Kubernetes' own.
    """
    data = json.dumps(go_normalized(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += struct.pack("<I", collision_count & 0xFFFFFFFF)
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in str(_fnv32a(data)))


def go_normalized(value: Any) -> Any:
    """`value` without null, {} and [] members: Kubernetes decodes templates into Go structs where those are
    the same as absent, and kubectl sends them (`rollout undo` patches in `creationTimestamp: null` and
    `resources: {}`), so two templates that differ only by them are the same template."""
    if isinstance(value, dict):
        out = {k: go_normalized(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [go_normalized(v) for v in value]
    return value


def _without_hash(template: Obj) -> Obj:
    t = go_normalized(template or {})
    meta = t.setdefault("metadata", {})
    labels = dict(meta.get("labels") or {})
    labels.pop(POD_TEMPLATE_HASH, None)
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    for key in [k for k, v in meta.items() if v in ({}, [], None, "")]:
        del meta[key]
    if not meta:
        t.pop("metadata")
    return t


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    return _without_hash(a) == _without_hash(b)


def template_with_hash(template: Obj, pod_hash: str) -> Obj:
    t = copy.deepcopy(template)
    meta = t.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), POD_TEMPLATE_HASH: pod_hash}
    return t


def selector_with_hash(selector: dict[str, Any], pod_hash: str) -> dict[str, Any]:
    s = copy.deepcopy(selector or {})
    s["matchLabels"] = {**(s.get("matchLabels") or {}), POD_TEMPLATE_HASH: pod_hash}
    return s


# --- revisions and annotations -------------------------------------------------------------------------------
def annotations_of(obj: Obj) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("annotations") or {})


def revision(obj: Obj) -> int:
    try:
        return int(annotations_of(obj).get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(rss: list[Obj]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    ann = rs["metadata"].setdefault("annotations", {})
    wanted = {DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(maximum)}
    if all(ann.get(k) == v for k, v in wanted.items()):
        return False
    ann.update(wanted)
    return True


def replicas_annotations_need_update(rs: Obj, desired: int, maximum: int) -> bool:
    ann = annotations_of(rs)
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(maximum)


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """Copy the deployment's annotations, raise the revision (keeping revision-history); k8s semantics."""
    ann = rs["metadata"].setdefault("annotations", {})
    updated = False
    for key, value in annotations_of(d).items():
        if key in _NOT_COPIED or ann.get(key) == value:
            continue
        ann[key] = value
        updated = True
    old_text = ann.get(REVISION, "")
    try:
        old = int(old_text) if old_text else 0
    except ValueError:
        return updated
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        updated = True
        if old_text:
            history = ann.get(REVISION_HISTORY, "")
            entries = [e for e in history.split(",") if e] + [old_text]
            while len(",".join(entries)) > MAX_REV_HISTORY_CHARS and len(entries) > 1:
                entries.pop(0)
            ann[REVISION_HISTORY] = ",".join(entries)
    if not exists and set_replicas_annotations(rs, replicas_of(d), replicas_of(d) + max_surge(d)):
        updated = True
    return updated


# --- scaling arithmetic --------------------------------------------------------------------------------------
def total_spec_replicas(rss: list[Obj]) -> int:
    return sum(replicas_of(rs) for rs in rss)


def pods_at_most(rs: Obj) -> int:
    """How many pods an RS may still have: its spec, or more while a scale-down's deletions are pending.

    status.replicas only drops once the ReplicaSet controller has seen its deletions come back, so an old
    ReplicaSet just scaled down from 6 to 3 still reports 6 and counts as 6 here.
    """
    return max(replicas_of(rs), int(rs.get("status", {}).get("replicas") or 0))


def new_rs_new_replicas(d: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    """How many replicas the new ReplicaSet may have now (NewRSNewReplicas).

    Kubernetes counts the surge on spec.replicas alone, so for a moment pods may exceed replicas + maxSurge:
    scaling an old ReplicaSet down lets the new one grow at once, racing the old pods' deletion. Counting an
    RS's pending pods too (pods_at_most) keeps the bound on real pods; the growth waits for the old
    ReplicaSet's status to show the deletions, and that status update requeues the Deployment.
    """
    desired = replicas_of(d)
    if not is_rolling(d):
        return desired
    current = replicas_of(new_rs)
    if current >= desired:
        return current
    surge = resolve_fenceposts(d)[0]
    total = sum(pods_at_most(rs) for rs in all_rss)
    max_total = desired + surge
    if total >= max_total:
        return current
    return current + min(max_total - total, desired - current)


def _go_round(x: float) -> int:
    """math.Round of Go: half away from zero (Python's round() is half to even)."""
    return math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)


def rs_fraction(rs: Obj, d: Obj) -> int:
    """How many replicas this RS gains (or loses) when the deployment's size changes, proportionally."""
    desired = replicas_of(d)
    if desired == 0:
        return -replicas_of(rs)
    deployment_replicas = desired + max_surge(d)
    try:
        annotated = int(annotations_of(rs)[MAX_REPLICAS])
    except (KeyError, ValueError):
        annotated = int(d.get("status", {}).get("replicas") or 0)
    if annotated <= 0:
        return 0  # no previous size to be proportional to; leftovers go to the largest RS
    return _go_round(replicas_of(rs) * deployment_replicas / annotated) - replicas_of(rs)


def rs_proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if replicas_of(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = rs_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def created_at(obj: Obj) -> float:
    return parse_time(obj.get("metadata", {}).get("creationTimestamp")) or 0.0


def by_creation(rss: list[Obj]) -> list[Obj]:
    return sorted(rss, key=lambda rs: (created_at(rs), rs["metadata"]["name"]))


def by_size_newer(rss: list[Obj]) -> list[Obj]:
    """Larger first; among equals newer first (who receives extra replicas)."""
    return sorted(rss, key=lambda rs: (-replicas_of(rs), -created_at(rs), rs["metadata"]["name"]))


def by_size_older(rss: list[Obj]) -> list[Obj]:
    """Larger first; among equals older first (who gives replicas back)."""
    return sorted(rss, key=lambda rs: (-replicas_of(rs), created_at(rs), rs["metadata"]["name"]))


def proportional_sizes(d: Obj, active: list[Obj]) -> dict[str, int]:
    """New sizes of the active RSs when a deployment is resized in the middle of a rollout."""
    desired = replicas_of(d)
    allowed = desired + max_surge(d) if desired > 0 else 0
    to_add = allowed - total_spec_replicas(active)
    ordered = by_size_newer(active) if to_add > 0 else by_size_older(active)
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        proportion = rs_proportion(rs, d, to_add, added) if to_add != 0 else 0
        sizes[rs["metadata"]["name"]] = replicas_of(rs) + proportion
        added += proportion
    if ordered and to_add != 0:
        first = ordered[0]["metadata"]["name"]
        sizes[first] = max(sizes[first] + to_add - added, 0)
    return sizes


def rolling_scale_down_budget(d: Obj, all_rss: list[Obj], new_rs: Obj | None) -> int:
    """maxScaledDown of reconcileOldReplicaSets: how many old replicas may go without breaking availability."""
    desired = replicas_of(d)
    min_available = desired - max_unavailable(d)
    new_unavailable = 0
    if new_rs is not None:
        new_unavailable = replicas_of(new_rs) - available_for_scale_down(new_rs)
    return total_spec_replicas(all_rss) - min_available - new_unavailable


def available_of(rs: Obj) -> int:
    return int(rs.get("status", {}).get("availableReplicas") or 0)


def status_observed(rs: Obj) -> bool:
    """The ReplicaSet's status speaks about its current spec (observedGeneration caught up)."""
    observed = int(rs.get("status", {}).get("observedGeneration") or 0)
    return observed >= int(rs.get("metadata", {}).get("generation") or 0)


def available_for_scale_down(rs: Obj) -> int:
    """Available replicas a scale-down may rely on: never more than the spec asks for.

    A ReplicaSet's status can count pods its controller is already deleting, even when observedGeneration has
    caught up: the ReplicaSet controller (like Kubernetes') computes status from the pods it saw *before*
    deleting the excess, and the corrected status only follows once the deletions come back through its watch
    (or never, if it is killed in between). Capping by spec.replicas is exact for that window, because the
    ReplicaSet controller deletes not-ready pods first: after it has deleted down to spec, the available pods
    left are min(available before, spec). Trusting the raw count let the Deployment controller scale an old
    ReplicaSet down a second time by the pods already going, dropping availability below minAvailable."""
    return min(available_of(rs), replicas_of(rs))


# --- conditions ----------------------------------------------------------------------------------------------
def get_condition(status: dict[str, Any], cond_type: str) -> dict[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == cond_type:
            return cond
    return None


def new_condition(cond_type: str, status: str, reason: str, message: str, now: float) -> dict[str, Any]:
    stamp = format_time(now)
    return {"type": cond_type, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}


def set_condition(status: dict[str, Any], cond: dict[str, Any]) -> None:
    """SetDeploymentCondition: unchanged status+reason keeps everything; same status keeps transition time."""
    current = get_condition(status, cond["type"])
    if current and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]] + [cond]


def remove_condition(status: dict[str, Any], cond_type: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != cond_type]


def has_progress_deadline(d: Obj) -> bool:
    value = d["spec"].get("progressDeadlineSeconds")
    return value is not None and int(value) != _MAX_INT32


def deployment_complete(d: Obj, status: dict[str, Any]) -> bool:
    desired = replicas_of(d)
    return (int(status.get("updatedReplicas") or 0) == desired and int(status.get("replicas") or 0) == desired
            and int(status.get("availableReplicas") or 0) == desired
            and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0))


def deployment_progressing(d: Obj, new: dict[str, Any]) -> bool:
    old = d.get("status") or {}

    def g(s: dict[str, Any], f: str) -> int:
        return int(s.get(f) or 0)

    old_old = g(old, "replicas") - g(old, "updatedReplicas")
    new_old = g(new, "replicas") - g(new, "updatedReplicas")
    return (g(new, "updatedReplicas") > g(old, "updatedReplicas") or new_old < old_old
            or g(new, "readyReplicas") > g(old, "readyReplicas")
            or g(new, "availableReplicas") > g(old, "availableReplicas"))


def deployment_timed_out(d: Obj, status: dict[str, Any], now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + int(d["spec"]["progressDeadlineSeconds"]) < now


def calculate_status(d: Obj, all_rss: list[Obj], new_rs: Obj | None, now: float) -> dict[str, Any]:
    available = sum(available_of(rs) for rs in all_rss)
    total = total_spec_replicas(all_rss)
    status: dict[str, Any] = {
        "observedGeneration": int(d["metadata"].get("generation") or 0),
        "replicas": sum(int(rs.get("status", {}).get("replicas") or 0) for rs in all_rss),
        "updatedReplicas": int((new_rs or {}).get("status", {}).get("replicas") or 0),
        "readyReplicas": sum(int(rs.get("status", {}).get("readyReplicas") or 0) for rs in all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
        "conditions": copy.deepcopy((d.get("status") or {}).get("conditions") or []),
    }
    collisions = (d.get("status") or {}).get("collisionCount")
    if collisions is not None:
        status["collisionCount"] = collisions
    if available >= replicas_of(d) - max_unavailable(d):
        set_condition(status, new_condition("Available", "True", MIN_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition("Available", "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status
