"""Carry out a `PodActions` plan on the runtime: sandboxes, containers, hooks, kills and cleanup.

The plan says what; this module knows how (CRI calls in the right order, hooks around starts and stops,
back-off bookkeeping, volumes and the pod cgroup). Start failures are not raised: they come back as waiting
reasons per container (CreateContainerConfigError, ErrImagePull, …) for the status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from aiokube.api.types import Obj
from kubelet.actions import PodActions, backoff_key
from kubelet.backoff import Backoff
from kubelet.cgroups import remove_pod_cgroup
from kubelet.cri import CriError, RuntimeClient, pb
from kubelet.env import ContainerConfigError, ObjectGetter, SourceCache, container_env
from kubelet.events import PodEvents
from kubelet.handlers import run_handler
from kubelet.image_puller import ImagePuller, ImagePullError
from kubelet.runtime_state import ContainerRecord, PodRuntimeStatus
from kubelet.specs import NodeSettings, container_config, sandbox_config
from kubelet.volumes import VolumeManager, container_mounts

log = logging.getLogger(__name__)

DEFAULT_GRACE = 30
MIN_STOP_GRACE = 2  # seconds: the kubelet never stops a container with less than this (except forced 0)


@dataclass
class SyncResult:
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)  # container -> (reason, message)
    errors: list[str] = field(default_factory=list)


class PodRuntimeManager:
    def __init__(
        self, runtime: RuntimeClient, node: NodeSettings, volumes: VolumeManager, api: ObjectGetter,
        container_backoff: Backoff, image_backoff: Backoff, node_allocatable: dict[str, str] | None = None,
        events: PodEvents | None = None, network_parallelism: int = 1,
    ) -> None:
        self.runtime = runtime
        self.node = node
        self.volumes = volumes
        self.api = api
        self.container_backoff = container_backoff
        self.images = ImagePuller(runtime, image_backoff)
        self.node_allocatable = node_allocatable or {}
        self.events = events or PodEvents(None)
        # Sandbox start/stop run CNI ADD/DEL, which edit iptables. Concurrent edits through iptables-nft lose
        # updates (measured: ~1 in 12 of 50 parallel teardowns left its CNI-* chains behind), and on this kind of
        # machine parallel starts are no faster than serial ones, so network operations go one at a time.
        self._network_ops = asyncio.Semaphore(network_parallelism)

    # --- sync ---------------------------------------------------------------------------------------------
    async def sync_pod(self, pod: Obj, rt: PodRuntimeStatus, actions: PodActions) -> SyncResult:
        result = SyncResult(waiting=dict(actions.waiting))
        for name in actions.waiting:
            self.events.emit(pod, "Warning", "BackOff",
                             f"Back-off restarting failed container {name} in pod {_pod_ref(pod)}")
        grace = termination_grace(pod)
        if actions.kill_pod:
            await self.kill_pod(pod, rt, grace)
        for cid, info in actions.containers_to_kill.items():
            record = next((c for c in rt.containers if c.id == cid), None)
            if record:
                log.info("killing %s/%s: %s", _pod_ref(pod), info.name, info.reason)
                self.events.emit(pod, "Normal", "Killing", info.reason)
                await self.kill_container(pod, record, grace if info.grace is None else info.grace)
        sources = SourceCache(self.api, pod["metadata"].get("namespace", "default"))
        starting = bool(actions.create_sandbox or actions.next_init_container or actions.containers_to_start)
        if not starting:
            if rt.running_containers:
                # Refresh configMap/secret/downwardAPI files so running containers see updates (one sync period).
                try:
                    await self.volumes.setup(pod, sources)
                except ContainerConfigError as e:
                    log.info("refreshing volumes of %s: %s", _pod_ref(pod), e)
            return result

        try:
            volume_paths = await self.volumes.setup(pod, sources)
        except ContainerConfigError as e:
            for c in _containers_to_start(pod, actions):
                result.waiting[c] = ("CreateContainerConfigError", str(e))
            return result

        sandbox_id = actions.sandbox_id
        attempt = actions.sandbox_attempt if actions.create_sandbox else (rt.sandboxes[0].attempt if rt.sandboxes
                                                                          else 0)
        sb_config = sandbox_config(pod, self.node, attempt)
        pod_ip = rt.ready_sandbox.ip if rt.ready_sandbox else ""
        if actions.create_sandbox:
            try:
                async with self._network_ops:
                    sandbox_id = await self.runtime.run_pod_sandbox(sb_config)
                status = await self.runtime.pod_sandbox_status(sandbox_id)
                pod_ip = status.status.network.ip
            except CriError as e:
                result.errors.append(f"Failed to create pod sandbox: {e}")
                self.events.emit(pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {e}")
                for c in _containers_to_start(pod, actions):
                    result.waiting[c] = ("ContainerCreating", "")
                return result

        spec = pod.get("spec", {})
        by_name = {c["name"]: (c, False) for c in spec.get("containers") or []}
        by_name.update({c["name"]: (c, True) for c in spec.get("initContainers") or []})
        for name in _containers_to_start(pod, actions):
            container, is_init = by_name[name]
            failure = await self._start_container(pod, container, is_init, rt, sandbox_id, sb_config,
                                                  volume_paths, sources, pod_ip)
            if failure:
                result.waiting[name] = failure
                self.events.emit(pod, "Warning", "Failed", f"Error: {failure[0]}: {failure[1]}".rstrip(": "))
            else:
                self.events.emit(pod, "Normal", "Started", f"Started container {name}")
        return result

    async def _start_container(
        self, pod: Obj, container: Obj, is_init: bool, rt: PodRuntimeStatus, sandbox_id: str,
        sb_config: pb.PodSandboxConfig, volume_paths: dict[str, str], sources: SourceCache, pod_ip: str,
    ) -> tuple[str, str] | None:
        name = container["name"]
        previous = rt.latest(name)
        restart_count = previous.restart_count + 1 if previous else 0
        try:
            image = await self.images.ensure(pod, container, sb_config)
        except ImagePullError as e:
            return (e.reason, e.message)
        try:
            pod_for_env = {**pod, "status": {**pod.get("status", {}), "podIP": pod_ip,
                                             "podIPs": [{"ip": pod_ip}] if pod_ip else []}}
            env = await container_env(pod_for_env, container, sources, self.node_allocatable)
            mounts = container_mounts(container, volume_paths)
        except ContainerConfigError as e:
            return ("CreateContainerConfigError", str(e))
        config = container_config(pod, container, restart_count=restart_count, env=env, mounts=mounts,
                                  image=image, node=self.node, is_init=is_init)
        if previous is not None and previous.exited:
            self.container_backoff.next(backoff_key(pod, name), previous.finished_at)
        try:
            cid = await self.runtime.create_container(sandbox_id, config, sb_config)
        except CriError as e:
            return ("CreateContainerError", e.details)
        try:
            await self.runtime.start_container(cid)
        except CriError as e:
            return ("RunContainerError", e.details)
        log.info("started %s/%s (restart %d)", _pod_ref(pod), name, restart_count)
        post_start = (container.get("lifecycle") or {}).get("postStart")
        if post_start:
            outcome = await run_handler(post_start, runtime=self.runtime, container_id=cid, container=container,
                                        pod_ip=pod_ip, timeout=float(termination_grace(pod)))
            if not outcome.success:
                log.info("postStart hook of %s/%s failed: %s", _pod_ref(pod), name, outcome.message)
                with contextlib.suppress(CriError):
                    await self.runtime.stop_container(cid, 0)
                return ("PostStartHookError", outcome.message)
        return None

    # --- kill ---------------------------------------------------------------------------------------------
    async def kill_container(self, pod: Obj | None, record: ContainerRecord, grace: int) -> None:
        """preStop (within the grace period), then StopContainer: SIGTERM, SIGKILL when the grace runs out."""
        if not record.running:
            return
        started = time.monotonic()
        container = _container_spec(pod, record.name) if pod else None
        pre_stop = ((container or {}).get("lifecycle") or {}).get("preStop")
        if pre_stop and container is not None and grace > 0:
            pod_ip = ""
            with contextlib.suppress(CriError):
                pod_ip = (await self.runtime.pod_sandbox_status(record.sandbox_id)).status.network.ip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run_handler(pre_stop, runtime=self.runtime, container_id=record.id,
                                                   container=container, pod_ip=pod_ip, timeout=grace), grace)
        # Whole seconds the preStop hook used come off the grace (as the kubelet counts them): truncating the
        # remainder instead would cut a second off every stop, preStop or not.
        remaining = max(0, grace - int(time.monotonic() - started))
        if grace > 0:
            remaining = max(remaining, MIN_STOP_GRACE)
        try:
            await self.runtime.stop_container(record.id, remaining)
        except CriError as e:
            if not e.not_found:
                raise

    async def kill_pod(self, pod: Obj | None, rt: PodRuntimeStatus, grace: int | None = None) -> None:
        """Stop every running container (in parallel, each with the grace period), then the sandboxes.

        The grace period is `grace` when given (0 forces SIGKILL at once), else the pod's, else (no pod object
        left) each container's own, recorded when it was created."""
        def grace_of(c: ContainerRecord) -> int:
            if grace is not None:
                return grace
            return termination_grace(pod) if pod else c.grace_period

        await asyncio.gather(*(self.kill_container(pod, c, grace_of(c)) for c in rt.running_containers))
        for sandbox in rt.sandboxes:
            if sandbox.ready:
                try:
                    async with self._network_ops:
                        await self.runtime.stop_pod_sandbox(sandbox.id)
                except CriError as e:
                    if not e.not_found:
                        raise

    async def remove_pod(self, rt: PodRuntimeStatus) -> None:
        """Remove every container and sandbox of a pod that is gone, its volumes and its cgroup."""
        for c in rt.containers:
            with contextlib.suppress(CriError):
                await self.runtime.remove_container(c.id)
        for sandbox in rt.sandboxes:
            with contextlib.suppress(CriError):
                async with self._network_ops:
                    await self.runtime.stop_pod_sandbox(sandbox.id)
            with contextlib.suppress(CriError):
                await self.runtime.remove_pod_sandbox(sandbox.id)
        self.volumes.teardown(rt.uid)
        remove_pod_cgroup(self.node.cgroup_parent(rt.uid))

    async def remove_dead_containers(self, rt: PodRuntimeStatus, keep_per_name: int = 1) -> None:
        """Keep the newest `keep_per_name` exited containers of each name (logs --previous, lastState)."""
        seen: dict[str, int] = {}
        for c in rt.containers:  # newest first
            if not c.exited:
                continue
            seen[c.name] = seen.get(c.name, 0) + 1
            if seen[c.name] > keep_per_name:
                with contextlib.suppress(CriError):
                    await self.runtime.remove_container(c.id)
        # Old sandboxes that are no longer ready and hold no kept container go too.
        kept_sandboxes = {c.sandbox_id for c in rt.containers}
        for sandbox in rt.sandboxes[1:]:
            if not sandbox.ready and sandbox.id not in kept_sandboxes:
                with contextlib.suppress(CriError):
                    await self.runtime.remove_pod_sandbox(sandbox.id)


def termination_grace(pod: Obj) -> int:
    """The grace period in force: the deletion's (shortened by a later DELETE) over the spec's."""
    meta_grace = pod.get("metadata", {}).get("deletionGracePeriodSeconds")
    if meta_grace is not None:
        return int(meta_grace)
    return int(pod.get("spec", {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE))


def _container_spec(pod: Obj, name: str) -> Obj | None:
    spec = pod.get("spec", {})
    return next((c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                 if c["name"] == name), None)


def _containers_to_start(pod: Obj, actions: PodActions) -> list[str]:
    if actions.next_init_container:
        return [actions.next_init_container]
    return list(actions.containers_to_start)


def _pod_ref(pod: Obj) -> str:
    return f"{pod['metadata'].get('namespace', 'default')}/{pod['metadata']['name']}"
