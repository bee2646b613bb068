"""Compute a pod's status from its spec, what the runtime holds, start failures and probe results.

Pure: phase (the kubelet's getPhase rules), conditions (PodReadyToStartContainers, Initialized,
ContainersReady, Ready, PodScheduled kept), IPs, and container statuses with state, lastState, ready, started,
restartCount, image, imageID, containerID. Transition times are kept while a condition's status is unchanged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from aiokube.api.types import Obj
from kubelet.actions import restart_policy
from kubelet.runtime_state import ContainerRecord, PodRuntimeStatus


@dataclass
class ProbeView:
    """Which containers probes currently call ready / started (names)."""

    ready: set[str] = field(default_factory=set)
    started: set[str] = field(default_factory=set)


def rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _terminated(c: ContainerRecord) -> Obj:
    reason = c.reason or ("Completed" if c.exit_code == 0 else "Error")
    out: Obj = {"exitCode": c.exit_code, "reason": reason, "containerID": f"containerd://{c.id}"}
    if c.started_at:
        out["startedAt"] = rfc3339(c.started_at)
    if c.finished_at:
        out["finishedAt"] = rfc3339(c.finished_at)
    if c.message:
        out["message"] = c.message
    return out


def container_status(
    spec: Obj, history: list[ContainerRecord], waiting: tuple[str, str] | None, probes: ProbeView,
    default_reason: str = "ContainerCreating",
) -> Obj:
    name = spec["name"]
    latest = history[0] if history else None
    status: Obj = {"name": name, "image": spec.get("image", ""), "imageID": "", "ready": False,
                   "started": False, "restartCount": latest.restart_count if latest else 0,
                   "state": {"waiting": {"reason": default_reason}}, "lastState": {}}
    if latest is None:
        if waiting:
            status["state"] = {"waiting": _waiting(waiting)}
        return status
    status["containerID"] = f"containerd://{latest.id}"
    status["imageID"] = latest.image_ref
    previous = next((c for c in history[1:] if c.exited), None)
    if previous:
        status["lastState"] = {"terminated": _terminated(previous)}
    if latest.running:
        status["state"] = {"running": {"startedAt": rfc3339(latest.started_at or latest.created_at)}}
        status["started"] = name in probes.started
        status["ready"] = name in probes.ready
    elif latest.exited:
        if waiting:  # held back (CrashLoopBackOff, …): waiting now, the exit becomes lastState
            status["state"] = {"waiting": _waiting(waiting)}
            status["lastState"] = {"terminated": _terminated(latest)}
        else:
            status["state"] = {"terminated": _terminated(latest)}
    elif waiting:
        status["state"] = {"waiting": _waiting(waiting)}
    return status


def _waiting(waiting: tuple[str, str]) -> Obj:
    reason, message = waiting
    out: Obj = {"reason": reason} if reason else {}
    if message:
        out["message"] = message
    return out


def pod_phase(pod: Obj, init_statuses: list[Obj], statuses: list[Obj], init_failed: bool) -> str:
    policy = restart_policy(pod)
    if init_failed:
        return "Failed"
    init_done = all("terminated" in s["state"] and s["state"]["terminated"]["exitCode"] == 0 for s in init_statuses)
    if not init_done:
        if policy == "Never" and any(s["state"].get("terminated", {}).get("exitCode", 0) != 0
                                     for s in init_statuses):
            return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for s in statuses:
        state = s["state"]
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"]["exitCode"] == 0:
                succeeded += 1
        elif "terminated" in (s.get("lastState") or {}):
            stopped += 1  # waiting to restart after an exit: counts as stopped, like the kubelet
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Running" if policy == "OnFailure" else "Failed"
    return "Pending"


def _condition(kind: str, ok: bool, old: list[Obj], now: str, reason: str = "") -> Obj:
    status = "True" if ok else "False"
    previous = next((c for c in old if c.get("type") == kind), None)
    since = previous["lastTransitionTime"] if previous and previous.get("status") == status else now
    cond: Obj = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if reason and not ok:
        cond["reason"] = reason
    return cond


def compute_pod_status(
    pod: Obj, rt: PodRuntimeStatus, waiting: dict[str, tuple[str, str]], probes: ProbeView, *,
    host_ip: str, init_failed: bool = False, now: float | None = None,
) -> Obj:
    spec, old = pod.get("spec", {}), pod.get("status", {})
    now_text = rfc3339(now if now is not None else dt.datetime.now(dt.UTC).timestamp())

    def build(specs: list[Obj], default_reason: str) -> list[Obj]:
        return [container_status(c, rt.history(c["name"]), waiting.get(c["name"]), probes, default_reason)
                for c in specs]

    init_statuses = build(spec.get("initContainers") or [], "PodInitializing")
    init_done = all("terminated" in s["state"] and s["state"]["terminated"]["exitCode"] == 0 for s in init_statuses)
    statuses = build(spec.get("containers") or [], "ContainerCreating" if init_done else "PodInitializing")
    phase = pod_phase(pod, init_statuses, statuses, init_failed)
    old_phase = old.get("phase")
    if old_phase in ("Succeeded", "Failed"):
        phase = old_phase  # terminal phases never change back

    sandbox = rt.ready_sandbox or (rt.sandboxes[0] if rt.sandboxes else None)
    host_net = bool(spec.get("hostNetwork"))
    pod_ip = host_ip if host_net else (sandbox.ip if sandbox and sandbox.ip else old.get("podIP", ""))
    initialized = init_done
    containers_ready = bool(statuses) and all(s["ready"] for s in statuses)
    old_conditions = old.get("conditions") or []
    conditions = [
        _condition("PodReadyToStartContainers", rt.ready_sandbox is not None, old_conditions, now_text),
        _condition("Initialized", initialized, old_conditions, now_text, "ContainersNotInitialized"),
        _condition("Ready", containers_ready, old_conditions, now_text, "ContainersNotReady"),
        _condition("ContainersReady", containers_ready, old_conditions, now_text, "ContainersNotReady"),
    ]
    if phase in ("Succeeded", "Failed"):
        for cond in conditions[2:]:
            cond.update(status="False", reason="PodCompleted")
            if not any(c.get("type") == cond["type"] and c.get("status") == "False" for c in old_conditions):
                cond["lastTransitionTime"] = now_text
    scheduled = next((c for c in old_conditions if c.get("type") == "PodScheduled"), None)
    conditions.append(scheduled or {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                                    "lastTransitionTime": now_text})
    status: Obj = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}] if host_ip else [],
        "startTime": old.get("startTime") or now_text,
        "containerStatuses": statuses,
        "qosClass": old.get("qosClass") or qos_class(pod),
    }
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status


def qos_class(pod: Obj) -> str:
    containers = (pod.get("spec", {}).get("containers") or []) + (pod.get("spec", {}).get("initContainers") or [])
    requests_any = limits_all = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
        limits_all = limits_all or bool(lim)
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed and limits_all else "Burstable"
