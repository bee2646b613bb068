"""Liveness, readiness and startup probes: one task per (pod, container instance, probe kind).

Each worker honours initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold and failureThreshold,
and calls `on_change(pod uid)` when its verdict flips, so the pod worker re-syncs (restart on liveness failure,
new readiness in status). Liveness and readiness wait until the startup probe (if any) has succeeded. Every failed
probe is also reported through `on_failure(pod uid, message)` (the kubelet's `Unhealthy` warning events).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokube.api.types import Obj
from kubelet.cri import RuntimeClient
from kubelet.handlers import HandlerResult, run_handler
from kubelet.runtime_state import PodRuntimeStatus
from kubelet.status import ProbeView

log = logging.getLogger(__name__)

KINDS = ("startupProbe", "livenessProbe", "readinessProbe")
EVENT_NAMES = {"startupProbe": "Startup", "livenessProbe": "Liveness", "readinessProbe": "Readiness"}


@dataclass
class _ContainerProbes:
    container_id: str
    started: bool
    ready: bool
    live: bool = True
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    started_event: asyncio.Event = field(default_factory=asyncio.Event)


ProbeRunner = Callable[..., Awaitable[HandlerResult]]  # run_handler's signature (keyword arguments)


class ProbeManager:
    def __init__(self, runtime: RuntimeClient, on_change: Callable[[str], None], *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 run_probe: ProbeRunner = run_handler,
                 on_failure: Callable[[str, str], None] | None = None) -> None:
        self.runtime = runtime
        self.on_change = on_change
        self.on_failure = on_failure
        self._sleep = sleep  # injected in tests (a fake clock) so probe timing is checked without waiting
        self._run_probe = run_probe
        self._pods: dict[str, dict[str, _ContainerProbes]] = {}  # uid -> container name -> state

    def sync(self, pod: Obj, rt: PodRuntimeStatus) -> None:
        """Probe exactly the running instances of the pod's app containers."""
        uid = pod["metadata"]["uid"]
        state = self._pods.setdefault(uid, {})
        pod_ip = rt.ready_sandbox.ip if rt.ready_sandbox else ""
        for spec in pod.get("spec", {}).get("containers") or []:
            name = spec["name"]
            latest = rt.latest(name)
            current = state.get(name)
            if latest is None or not latest.running:
                if current:
                    self._stop(current)
                    del state[name]
                continue
            if current and current.container_id == latest.id:
                continue
            if current:
                self._stop(current)
            probes = _ContainerProbes(latest.id, started="startupProbe" not in spec,
                                      ready="readinessProbe" not in spec)
            if probes.started:
                probes.started_event.set()
            state[name] = probes
            for kind in KINDS:
                if kind in spec:
                    probes.tasks.append(asyncio.create_task(
                        self._worker(uid, spec, kind, probes, pod_ip), name=f"probe-{uid}-{name}-{kind}"))

    def view(self, uid: str) -> ProbeView:
        state = self._pods.get(uid, {})
        return ProbeView(ready={n for n, p in state.items() if p.ready and p.started},
                         started={n for n, p in state.items() if p.started})

    def liveness_failed(self, uid: str) -> frozenset[str]:
        return frozenset(n for n, p in self._pods.get(uid, {}).items() if not p.live)

    def remove(self, uid: str) -> None:
        for probes in self._pods.pop(uid, {}).values():
            self._stop(probes)

    def close(self) -> None:
        for uid in list(self._pods):
            self.remove(uid)

    @staticmethod
    def _stop(probes: _ContainerProbes) -> None:
        for task in probes.tasks:
            task.cancel()

    async def _worker(self, uid: str, container: Obj, kind: str, probes: _ContainerProbes, pod_ip: str) -> None:
        probe: Obj = container[kind]
        period = float(probe.get("periodSeconds", 10))
        timeout = float(probe.get("timeoutSeconds", 1))
        success_threshold = int(probe.get("successThreshold", 1))
        failure_threshold = int(probe.get("failureThreshold", 3))
        if kind != "startupProbe":
            await probes.started_event.wait()
        await self._sleep(float(probe.get("initialDelaySeconds", 0)))
        successes = failures = 0
        while True:
            result = await self._run_probe(probe, runtime=self.runtime, container_id=probes.container_id,
                                       container=container, pod_ip=pod_ip, timeout=timeout)
            if result.success:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
                if self.on_failure is not None:
                    self.on_failure(uid, f"{EVENT_NAMES[kind]} probe failed: {result.message}")
            changed = False
            if kind == "startupProbe":
                if successes >= 1:
                    probes.started = changed = True
                    probes.started_event.set()
                elif failures >= failure_threshold:
                    probes.live = False  # a failed startup probe kills the container like liveness
                    changed = True
            elif kind == "livenessProbe":
                if failures >= failure_threshold and probes.live:
                    probes.live, changed = False, True
                    log.info("liveness probe of %s/%s failed: %s", uid, container["name"], result.message)
            elif successes >= success_threshold and not probes.ready:
                probes.ready = changed = True
            elif failures >= failure_threshold and probes.ready:
                probes.ready, changed = False, True
            if changed:
                self.on_change(uid)
            if kind == "startupProbe" and probes.started:
                return
            if not probes.live:
                return  # the container is about to be killed; its successor gets fresh workers
            await self._sleep(period)
