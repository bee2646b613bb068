"""The node agent: watches the pods bound to this node and keeps the runtime and the pods' status in line.

Wiring: pod informer (fieldSelector spec.nodeName) and PLEG and probes → `PodWorkers.update(uid)` → `sync(uid)`:
read the newest pod, look at the runtime, plan (`compute_pod_actions`), act (`PodRuntimeManager`), report
(`compute_pod_status` → `StatusManager`). Deleted pods are stopped gracefully and then removed from the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.client import ApiClient, EventRecorder, Informer
from kubelet.actions import CRASH_LOOP_BACK_OFF, backoff_key, compute_pod_actions
from kubelet.backoff import Backoff
from kubelet.cgroups import pod_cgroup_uids, remove_pod_cgroup
from kubelet.config import KubeletConfig
from kubelet.cri import CriError, RuntimeClient
from kubelet.events import PodEvents
from kubelet.image_gc import ImageGarbageCollector, ImageGCPolicy
from kubelet.image_puller import IMAGE_PULL_BACK_OFF
from kubelet.node_status import NodeIdentity, NodeStatusReporter, allocatable, capacity, default_node_ip
from kubelet.pleg import Pleg
from kubelet.pod_cidr import PodCidrSync, network_ready
from kubelet.pod_runtime import PodRuntimeManager, termination_grace
from kubelet.pod_workers import PodWorkers
from kubelet.probes import ProbeManager
from kubelet.runtime_state import PodRuntimeStatus, list_runtime_pods
from kubelet.specs import NodeSettings
from kubelet.status import compute_pod_status
from kubelet.status_manager import StatusManager
from kubelet.volumes import VolumeManager

log = logging.getLogger(__name__)

# containerd loads a rendered CNI config from its conf-dir watcher, a moment after UpdateRuntimeConfig returns.
NETWORK_READY_POLLS = 30
NETWORK_READY_POLL_SECONDS = 0.1


class Kubelet:
    def __init__(self, config: KubeletConfig, api: ApiClient, runtime: RuntimeClient) -> None:
        self.config = config
        self.api = api
        self.runtime = runtime
        self.node_ip = config.node_ip or default_node_ip()
        os.makedirs(config.root_dir, exist_ok=True)
        node = NodeSettings(node_name=config.node_name, root_dir=config.root_dir, cgroup_prefix=config.cgroup_prefix,
                            cluster_dns=config.cluster_dns, cluster_domain=config.cluster_domain)
        self.node_allocatable = allocatable(capacity(config.root_dir))
        self.volumes = VolumeManager(config.root_dir, self.node_allocatable)
        self.backoff = Backoff(config.backoff_initial, config.backoff_max)
        self.image_backoff = Backoff(config.image_backoff_initial, config.backoff_max)
        self.events = PodEvents(EventRecorder(api, "kubelet", host=config.node_name))
        self.manager = PodRuntimeManager(runtime, node, self.volumes, api, self.backoff, self.image_backoff,
                                         self.node_allocatable, self.events)
        self.workers = PodWorkers(self.sync)
        self.pleg = Pleg(runtime, config.node_name, self.workers.update, period=config.pleg_period)
        self.probes = ProbeManager(runtime, self.workers.update, on_failure=self._probe_failed)
        self.statuses = StatusManager(api)
        self.node_status = NodeStatusReporter(
            api, runtime, NodeIdentity(config.node_name, self.node_ip, config.pod_cidr, config.root_dir,
                                       config.server_port),
            lease_interval=config.lease_interval, status_interval=config.status_interval)
        # The Node's podCIDR (nodeipam's, or --pod-cidr's) → the runtime's CNI config (UpdateRuntimeConfig).
        self.pod_cidr = PodCidrSync(api, runtime, config.node_name, on_applied=self._network_configured,
                                    recheck_interval=config.status_interval)
        self.image_gc = ImageGarbageCollector(runtime, ImageGCPolicy(
            high_threshold_percent=config.image_gc_high_threshold, low_threshold_percent=config.image_gc_low_threshold,
            min_age=config.image_minimum_gc_age, max_age=config.image_maximum_gc_age,
            sandbox_image=config.sandbox_image))
        self.informer = Informer(api, "pods", field_selector=f"spec.nodeName={config.node_name}")
        self._uid_to_key: dict[str, str] = {}
        self.informer.add_handler(on_add=self._on_pod, on_update=lambda _old, new: self._on_pod(new),
                                  on_delete=self._on_pod)

    # --- events -------------------------------------------------------------------------------------------
    def _on_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if meta["uid"] not in self._uid_to_key:
            log.debug("pod %s/%s (%s) seen", meta.get("namespace"), meta["name"], meta["uid"])
        self._uid_to_key[meta["uid"]] = f"{meta.get('namespace', 'default')}/{meta['name']}"
        self.workers.update(meta["uid"])

    def _probe_failed(self, uid: str, message: str) -> None:
        pod = self.pod_by_uid(uid)
        if pod is not None:
            self.events.emit(pod, "Warning", "Unhealthy", message)

    def pod_by_uid(self, uid: str) -> Obj | None:
        key = self._uid_to_key.get(uid)
        pod = self.informer.store.get(key) if key else None
        if pod is None or pod["metadata"]["uid"] != uid:
            return None
        return pod

    @property
    def node_name(self) -> str:
        return self.config.node_name

    def list_pods(self) -> list[Obj]:
        return self.informer.store.list()

    def find_pod(self, namespace: str, name: str) -> Obj | None:
        return self.informer.store.get(f"{namespace}/{name}")

    # --- sync ---------------------------------------------------------------------------------------------
    async def runtime_pod(self, uid: str) -> PodRuntimeStatus:
        pods = await list_runtime_pods(self.runtime, self.config.node_name, uid=uid)
        return pods.get(uid) or PodRuntimeStatus(uid)

    async def sync(self, uid: str) -> None:
        pod = self.pod_by_uid(uid)
        rt = await self.runtime_pod(uid)
        if pod is None:
            await self._remove_orphan(uid, rt)
            return
        if pod["metadata"].get("deletionTimestamp"):
            await self._terminate(pod, rt)
            return
        pod = self.statuses.with_latest_status(pod)
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            # A finished pod never runs again: make sure nothing is left running, keep the record.
            if rt.ready_sandbox or rt.running_containers:
                await self.manager.kill_pod(pod, rt)
            self.probes.remove(uid)
            return

        actions = compute_pod_actions(pod, rt, self.backoff, liveness_failed=self.probes.liveness_failed(uid))
        result = await self.manager.sync_pod(pod, rt, actions)
        for message in result.errors:
            log.warning("pod %s: %s", self._uid_to_key.get(uid, uid), message)
        if not actions.idle:
            rt = await self.runtime_pod(uid)
        self.probes.sync(pod, rt)
        status = compute_pod_status(pod, rt, result.waiting, self.probes.view(uid), host_ip=self.node_ip,
                                    init_failed=actions.init_failed)
        await self.statuses.set(pod, status)
        await self.manager.remove_dead_containers(rt)
        self._schedule_retries(pod, rt, result.waiting, bool(result.errors))

    def _schedule_retries(self, pod: Obj, rt: PodRuntimeStatus, waiting: dict[str, tuple[str, str]],
                          failed: bool) -> None:
        uid = pod["metadata"]["uid"]
        delay = self.config.resync_period
        for name, (reason, _) in waiting.items():
            if reason == CRASH_LOOP_BACK_OFF:
                latest = rt.latest(name)
                if latest:
                    delay = min(delay, self.backoff.remaining(backoff_key(pod, name), latest.finished_at) + 0.05)
            elif reason == IMAGE_PULL_BACK_OFF or reason.startswith("Err") or reason.endswith("Error"):
                delay = min(delay, max(1.0, self.config.image_backoff_initial / 2))
        if failed:
            delay = min(delay, 2.0)
        self.workers.update_after(uid, delay)

    async def _terminate(self, pod: Obj, rt: PodRuntimeStatus) -> None:
        """Graceful deletion: preStop + SIGTERM, SIGKILL after the grace period, then remove the API object."""
        uid = pod["metadata"]["uid"]
        self.probes.remove(uid)
        await self.manager.kill_pod(pod, rt, termination_grace(pod))
        rt = await self.runtime_pod(uid)
        status = compute_pod_status(self.statuses.with_latest_status(pod), rt, {}, self.probes.view(uid),
                                    host_ip=self.node_ip)
        with contextlib.suppress(ApiError):
            await self.statuses.set(pod, status)
        await self.manager.remove_pod(rt)
        meta = pod["metadata"]
        try:
            await self.api.delete("pods", meta["name"], namespace=meta.get("namespace", "default"),
                                  grace_period_seconds=0, preconditions={"uid": uid})
        except ApiError as e:
            if e.code not in (404, 409):
                raise
        self.statuses.forget(uid)

    async def _remove_orphan(self, uid: str, rt: PodRuntimeStatus) -> None:
        """A pod gone from the API (or never bound here): stop and remove whatever the runtime holds for it."""
        self.probes.remove(uid)
        self.statuses.forget(uid)
        self._uid_to_key.pop(uid, None)
        if rt.sandboxes or rt.containers:
            log.info("removing runtime pod %s/%s (%s): not bound to this node", rt.namespace, rt.name, uid)
            await self.manager.kill_pod(None, rt)
            await self.manager.remove_pod(rt)
        else:
            self.volumes.teardown(uid)

    # --- network ------------------------------------------------------------------------------------------
    async def _network_configured(self, cidr: str) -> None:
        """The runtime just got its pod CIDR: report the Node Ready as soon as the runtime's network is, instead
        of at the next status round."""
        for _ in range(NETWORK_READY_POLLS):
            with contextlib.suppress(CriError):
                if await network_ready(self.runtime):
                    break
            await asyncio.sleep(NETWORK_READY_POLL_SECONDS)
        with contextlib.suppress(ApiError, CriError, OSError):
            await self.node_status.post_status()

    # --- housekeeping -------------------------------------------------------------------------------------
    async def housekeeping(self) -> None:
        """Sync runtime pods and pod directories the API does not (or no longer) bind here, so they go away.

        Pods in the informer resync themselves (every sync schedules the next); this catches the strays.
        """
        known = {p["metadata"]["uid"] for p in self.informer.store.list()}
        for uid in (self.pleg.known_uids() | set(self.volumes.known_pod_uids())) - known:
            if not self.workers.busy(uid):
                self.workers.update(uid)
        await self._remove_leftover_cgroups(known)

    async def _remove_leftover_cgroups(self, api_uids: set[str]) -> None:
        """Remove pod cgroups that belong to no API pod and no runtime sandbox: nothing would ever remove them.

        The runtime is listed afresh (not the PLEG's cache) so a sandbox created since the last relist keeps its
        cgroup; pods with a worker in flight are left to that worker."""
        leftovers = pod_cgroup_uids(self.config.cgroup_prefix, self.config.cgroup_root) - api_uids
        if not leftovers:
            return
        runtime_uids = set(await list_runtime_pods(self.runtime, self.config.node_name, details=False))
        for uid in leftovers - runtime_uids:
            if not self.workers.busy(uid):
                log.info("removing leftover cgroup of pod %s", uid)
                remove_pod_cgroup(self.manager.node.cgroup_parent(uid), self.config.cgroup_root)

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.housekeeping_period)
            try:
                await self.housekeeping()
            except Exception:  # the loop must outlive one bad round; the next one retries
                log.exception("housekeeping failed")

    async def _image_gc_loop(self) -> None:
        while True:
            try:
                await self.image_gc.garbage_collect()
            except Exception:  # a failed round (runtime hiccup) must not stop later rounds
                log.exception("image garbage collection failed")
            await asyncio.sleep(self.config.image_gc_period)

    # --- run ----------------------------------------------------------------------------------------------
    async def run(self, *, extra: list[Any] | None = None) -> None:
        await self.node_status.register()
        with contextlib.suppress(ApiError):
            await self.node_status.post_status(force=True)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.node_status.run_lease(), name="lease")
            tg.create_task(self.node_status.run_status(), name="node-status")
            tg.create_task(self.pod_cidr.run(), name="pod-cidr")
            tg.create_task(self.informer.run(), name="pod-informer")
            await self.informer.wait_synced()
            # Adopt first: the first relist records what runs, then every pod syncs against it.
            try:
                await self.pleg.relist()
            except CriError as e:
                log.warning("first runtime relist failed (%s); the PLEG loop retries", e)
            for pod in self.informer.store.list():
                self._on_pod(pod)
            await self.housekeeping()
            tg.create_task(self.pleg.run(), name="pleg")
            tg.create_task(self._housekeeping_loop(), name="housekeeping")
            if self.config.image_gc_period > 0:
                tg.create_task(self._image_gc_loop(), name="image-gc")
            for coro in extra or []:
                tg.create_task(coro)

    async def close(self) -> None:
        self.probes.close()
        await self.workers.close()
        await self.events.close()
