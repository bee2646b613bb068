"""Plan one pod's sync: compare the pod spec with what the runtime holds and say what to kill, create, start.

`compute_pod_actions` is pure (no I/O; the back-off table is only read), so every rule is unit-tested; the
runtime manager then carries the plan out. The rules follow the kubelet's computePodActions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokube.api.types import Obj
from kubelet.backoff import Backoff
from kubelet.labels import container_hash
from kubelet.runtime_state import ContainerRecord, PodRuntimeStatus

CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"


@dataclass
class KillInfo:
    name: str
    reason: str
    # A probe's own terminationGracePeriodSeconds (liveness/startup failure) over the pod's; None = the pod's.
    grace: int | None = None


@dataclass
class PodActions:
    kill_pod: bool = False  # stop every container and the sandbox first
    create_sandbox: bool = False
    sandbox_attempt: int = 0
    sandbox_id: str = ""  # the ready sandbox new containers go into (empty when one is created)
    next_init_container: str | None = None
    init_failed: bool = False  # an init container failed under restartPolicy Never: the pod has failed
    containers_to_start: list[str] = field(default_factory=list)
    containers_to_kill: dict[str, KillInfo] = field(default_factory=dict)  # container id -> why
    # container name -> (reason, message) for containers that should run but are held back (back-off)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def idle(self) -> bool:
        return not (self.kill_pod or self.create_sandbox or self.next_init_container or self.containers_to_start
                    or self.containers_to_kill)


def probe_grace(container: Obj) -> int | None:
    """The probe-level terminationGracePeriodSeconds that applies when a failed probe kills the container
    (liveness first, then startup, whose failures restart it the same way); None when neither sets one."""
    for probe in ("livenessProbe", "startupProbe"):
        seconds = (container.get(probe) or {}).get("terminationGracePeriodSeconds")
        if seconds is not None:
            return int(seconds)
    return None


def backoff_key(pod: Obj, container_name: str) -> str:
    meta = pod["metadata"]
    return f"{meta.get('namespace', 'default')}_{meta['name']}_{meta['uid']}_{container_name}"


def restart_policy(pod: Obj) -> str:
    return str(pod.get("spec", {}).get("restartPolicy") or "Always")


def should_restart(policy: str, record: ContainerRecord) -> bool:
    """May an exited container be started again under the pod's restartPolicy?"""
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return record.exit_code != 0
    return False


def _blocked_by_backoff(
    pod: Obj, name: str, latest: ContainerRecord | None, backoff: Backoff, actions: PodActions
) -> bool:
    if latest is None or not latest.exited:
        return False
    key = backoff_key(pod, name)
    if not backoff.in_backoff_since(key, latest.finished_at):
        return False
    meta = pod["metadata"]
    message = (f"back-off {int(backoff.get(key))}s restarting failed container={name} "
               f"pod={meta['name']}_{meta.get('namespace', 'default')}({meta['uid']})")
    actions.waiting[name] = (CRASH_LOOP_BACK_OFF, message)
    return True


def compute_pod_actions(
    pod: Obj, runtime: PodRuntimeStatus, backoff: Backoff, *, liveness_failed: frozenset[str] = frozenset()
) -> PodActions:
    """What to do for one pod that should be running (terminating pods are simply killed)."""
    spec = pod.get("spec", {})
    policy = restart_policy(pod)
    init_containers: list[Obj] = spec.get("initContainers") or []
    app_containers: list[Obj] = spec.get("containers") or []
    actions = PodActions()

    ready = [s for s in runtime.sandboxes if s.ready]
    if len(ready) != 1:
        # No usable sandbox (none yet, it died, or several): start over with a fresh one.
        if runtime.sandboxes and policy == "Never" and runtime.containers:
            # The pod ran once and must not restart: just make sure nothing is left running.
            actions.kill_pod = bool(ready or runtime.running_containers)
            return actions
        actions.kill_pod = bool(runtime.sandboxes and (ready or runtime.running_containers))
        actions.create_sandbox = True
        actions.sandbox_attempt = (max(s.attempt for s in runtime.sandboxes) + 1) if runtime.sandboxes else 0
        if init_containers:
            actions.next_init_container = init_containers[0]["name"]
        else:
            for c in app_containers:
                latest = runtime.latest(c["name"])
                if latest and latest.exited and latest.exit_code == 0 and policy == "OnFailure":
                    continue
                actions.containers_to_start.append(c["name"])
            if not actions.containers_to_start:
                actions.create_sandbox = False  # everything already finished successfully
        return actions
    actions.sandbox_id = ready[0].id

    # Init containers run one at a time, in order, each to success, before any app container.
    for c in init_containers:
        latest = runtime.latest(c["name"])
        if latest is None:
            actions.next_init_container = c["name"]
            return actions
        if latest.running or latest.state == "created":
            return actions  # still running: wait for it
        if latest.exit_code == 0:
            continue
        if policy == "Never":
            actions.init_failed = True
            actions.kill_pod = True
            return actions
        if not _blocked_by_backoff(pod, c["name"], latest, backoff, actions):
            actions.next_init_container = c["name"]
        return actions

    keep = 0
    for c in app_containers:
        name = c["name"]
        latest = runtime.latest(name)
        if latest is None:
            actions.containers_to_start.append(name)
            continue
        if latest.running:
            if latest.spec_hash and latest.spec_hash != container_hash(c):
                actions.containers_to_kill[latest.id] = KillInfo(name, f"Container {name} definition changed")
                actions.containers_to_start.append(name)
            elif name in liveness_failed:
                actions.containers_to_kill[latest.id] = KillInfo(
                    name, f"Container {name} failed liveness probe, will be restarted", probe_grace(c))
                if policy != "Never":
                    actions.containers_to_start.append(name)
            else:
                keep += 1
            continue
        if latest.state == "created":
            # Created but never started (the agent died in between): replace it.
            actions.containers_to_kill[latest.id] = KillInfo(name, "Container was never started")
            actions.containers_to_start.append(name)
            continue
        if should_restart(policy, latest):
            if _blocked_by_backoff(pod, name, latest, backoff, actions):
                keep += 1  # it will run again: the pod is not done
            else:
                actions.containers_to_start.append(name)

    if keep == 0 and not actions.containers_to_start:
        # Every container has finished for good: stop the sandbox (containers stay for logs and status).
        actions.kill_pod = True
    return actions
