"""Deployment controller: roll a pod template out through ReplicaSets.

reconcile(key) follows k8s syncDeployment: claim ReplicaSets; a deployment being deleted only gets its
status; paused or resized deployments are only scaled (proportionally across ReplicaSets mid-rollout);
otherwise Recreate or RollingUpdate one step, then the status `kubectl rollout status` reads (replica counts,
Progressing and Available conditions). The arithmetic lives in deployment_util.py; this module decides the
order of writes. State for one pass is held by `_DeploymentSync`, so workers never share it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.client import Result
from controllers import deployment_util as du
from controllers.events import emit
from controllers.informers import dependents_of, in_namespace
from controllers.labels import selector_matches
from controllers.ownerrefs import controller_of, controller_ref_for, is_deleting, object_key, split_key
from controllers.ownership import claim
from controllers.podutil import phase
from controllers.statuswriter import write_status
from controllers.timeutil import Clock, parse_time, system_clock

log = logging.getLogger(__name__)

_INT_STATUS_FIELDS = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                      "unavailableReplicas", "collisionCount")


def status_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if any(int(a.get(f) or 0) != int(b.get(f) or 0) for f in _INT_STATUS_FIELDS):
        return False
    return (a.get("conditions") or []) == (b.get("conditions") or [])


class _DeploymentSync:
    """One reconcile pass over one deployment; `self.d` is refreshed after each write of it."""

    def __init__(self, owner: DeploymentReconciler, d: Obj, rss: list[Obj]) -> None:
        self.client = owner.client
        self.recorder = owner.recorder
        self.pods = owner.pods
        self.now = owner.clock()
        self.d = copy.deepcopy(d)
        self.rss = rss
        self.requeue_after: float | None = None

    @property
    def name(self) -> str:
        return str(self.d["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.d["metadata"]["namespace"])

    # --- entry ------------------------------------------------------------------------------------------
    async def run(self) -> Result:
        if is_deleting(self.d):
            new_rs, old_rss = await self.new_and_old(create=False)
            await self.sync_status(self.all_of(new_rs, old_rss), new_rs)
            return Result()
        await self.check_paused_conditions()
        if self.d["spec"].get("paused") or await self.is_scaling_event():
            await self.sync_scale()
        elif du.is_rolling(self.d):
            await self.rollout_rolling()
        else:
            await self.rollout_recreate()
        return Result(requeue_after=self.requeue_after)

    @staticmethod
    def all_of(new_rs: Obj | None, old_rss: list[Obj]) -> list[Obj]:
        return [*old_rss, new_rs] if new_rs is not None else list(old_rss)

    # --- finding/creating the new ReplicaSet --------------------------------------------------------------
    def find_new(self) -> Obj | None:
        template = self.d["spec"].get("template") or {}
        for rs in du.by_creation(self.rss):
            if du.equal_ignore_hash(rs["spec"].get("template") or {}, template):
                return rs
        return None

    async def new_and_old(self, *, create: bool) -> tuple[Obj | None, list[Obj]]:
        """getAllReplicaSetsAndSyncRevision: the new RS (created if asked) and the old ones."""
        existing = self.find_new()
        old = [rs for rs in self.rss if existing is None or rs["metadata"]["uid"] != existing["metadata"]["uid"]]
        new_revision = du.max_revision(old) + 1
        if existing is not None:
            return await self.sync_existing_new(existing, new_revision), old
        if not create:
            return None, old
        return await self.create_new(old, new_revision), old

    async def sync_existing_new(self, rs: Obj, new_revision: int) -> Obj:
        updated = copy.deepcopy(rs)
        changed = du.set_new_rs_annotations(self.d, updated, new_revision, exists=True)
        min_ready = self.d["spec"].get("minReadySeconds") or 0
        if changed or (updated["spec"].get("minReadySeconds") or 0) != min_ready:
            updated["spec"]["minReadySeconds"] = min_ready
            updated = await self.client.update("replicasets", updated)
            self.replace(updated)
        await self.set_revision(du.annotations_of(updated).get(du.REVISION, ""))
        status = copy.deepcopy(self.d.get("status") or {})
        if du.has_progress_deadline(self.d) and du.get_condition(status, "Progressing") is None:
            du.set_condition(status, du.new_condition("Progressing", "True", du.FOUND_NEW_RS,
                                                      f'Found new replica set "{updated["metadata"]["name"]}"',
                                                      self.now))
            await self.write_status(status)
        return updated

    async def create_new(self, old: list[Obj], new_revision: int) -> Obj | None:
        d = self.d
        collisions = (d.get("status") or {}).get("collisionCount")
        pod_hash = du.compute_hash(d["spec"]["template"], collisions)
        template = du.template_with_hash(d["spec"]["template"], pod_hash)
        rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{self.name}-{pod_hash}", "namespace": self.namespace,
                         "labels": dict(template["metadata"]["labels"]),
                         "ownerReferences": [controller_ref_for(d)]},
            "spec": {"replicas": 0, "minReadySeconds": d["spec"].get("minReadySeconds") or 0,
                     "selector": du.selector_with_hash(d["spec"]["selector"], pod_hash), "template": template},
        }
        rs["spec"]["replicas"] = du.new_rs_new_replicas(d, [*old, rs], rs)
        du.set_new_rs_annotations(d, rs, new_revision, exists=False)
        try:
            created: Obj = await self.client.create("replicasets", rs, namespace=self.namespace)
        except ApiError as err:
            if err.code == 409 and err.reason == "AlreadyExists":
                return await self.on_name_collision(rs)
            message = f'Failed to create new replica set "{rs["metadata"]["name"]}": {err.message}'
            status = copy.deepcopy(d.get("status") or {})
            if du.has_progress_deadline(d):
                du.set_condition(status, du.new_condition("Progressing", "False", du.FAILED_RS_CREATE, message,
                                                          self.now))
                await self.write_status(status)
            await emit(self.recorder, d, "Warning", "FailedCreate", message)
            raise
        self.rss.append(created)
        replicas = du.replicas_of(created)
        if replicas > 0:
            await emit(self.recorder, d, "Normal", "ScalingReplicaSet",
                       f"Scaled up replica set {created['metadata']['name']} from 0 to {replicas}")
        await self.set_revision(str(new_revision))
        if du.has_progress_deadline(d):
            status = copy.deepcopy(self.d.get("status") or {})
            du.set_condition(status, du.new_condition("Progressing", "True", du.NEW_RS_CREATED,
                                                      f'Created new replica set "{created["metadata"]["name"]}"',
                                                      self.now))
            await self.write_status(status)
        return created

    async def on_name_collision(self, wanted: Obj) -> Obj | None:
        """Same name, different template: bump collisionCount so the next hash (and name) differs."""
        try:
            existing: Obj = await self.client.get("replicasets", wanted["metadata"]["name"], namespace=self.namespace)
        except ApiError as err:
            if err.code == 404:
                raise RuntimeError("replica set vanished after AlreadyExists; retrying") from err
            raise
        ref = controller_of(existing)
        if (ref is not None and ref.get("uid") == self.d["metadata"]["uid"]
                and du.equal_ignore_hash(existing["spec"]["template"], self.d["spec"]["template"])):
            self.rss.append(existing)
            return existing
        status = copy.deepcopy(self.d.get("status") or {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self.write_status(status)
        raise RuntimeError(f"hash collision on replica set {wanted['metadata']['name']}; collisionCount raised")

    # --- writes -----------------------------------------------------------------------------------------
    def replace(self, rs: Obj) -> None:
        self.rss = [rs if r["metadata"]["uid"] == rs["metadata"]["uid"] else r for r in self.rss]

    async def set_revision(self, value: str) -> None:
        if not value or du.annotations_of(self.d).get(du.REVISION) == value:
            return
        self.d = await self.client.patch("deployments", self.name,
                                         {"metadata": {"annotations": {du.REVISION: value}}},
                                         namespace=self.namespace, patch_type="merge")

    async def write_status(self, status: dict[str, Any]) -> None:
        written = await write_status(self.client, "deployments", self.d, status)
        if written is not None:
            self.d = written

    async def scale_rs(self, rs: Obj, new_scale: int) -> tuple[bool, Obj]:
        """Set an RS's size and its desired/max-replicas annotations; an Event for a size change."""
        desired = du.replicas_of(self.d)
        maximum = desired + du.max_surge(self.d)
        old_scale = du.replicas_of(rs)
        size_changes = old_scale != new_scale
        if not size_changes and not du.replicas_annotations_need_update(rs, desired, maximum):
            return False, rs
        updated = copy.deepcopy(rs)
        updated["spec"]["replicas"] = new_scale
        du.set_replicas_annotations(updated, desired, maximum)
        updated = await self.client.update("replicasets", updated)
        self.replace(updated)
        if size_changes:
            direction = "up" if new_scale > old_scale else "down"
            log.info("deployment %s/%s: scaled %s %s %d -> %d; seen: %s", self.namespace, self.name, direction,
                     rs["metadata"]["name"], old_scale, new_scale, self.describe_view())
            await emit(self.recorder, self.d, "Normal", "ScalingReplicaSet",
                       f"Scaled {direction} replica set {rs['metadata']['name']} from {old_scale} to {new_scale}")
        return size_changes, updated

    def describe_view(self) -> str:
        """The ReplicaSets as this pass sees them (spec/gen vs status), for the log line of a scaling step."""
        parts = []
        for rs in du.by_creation(self.rss):
            st = rs.get("status") or {}
            parts.append(f"{rs['metadata']['name']}[spec={du.replicas_of(rs)} gen={rs['metadata'].get('generation')}"
                         f" obs={st.get('observedGeneration')} replicas={st.get('replicas')}"
                         f" avail={st.get('availableReplicas')}]")
        return " ".join(parts)

    def current(self, rs: Obj | None) -> Obj | None:
        """The latest copy of `rs` after writes made in this pass."""
        if rs is None:
            return None
        for r in self.rss:
            if r["metadata"]["uid"] == rs["metadata"]["uid"]:
                return r
        return rs

    def currents(self, rss: list[Obj]) -> list[Obj]:
        return [r for rs in rss if (r := self.current(rs)) is not None]

    # --- paused / scaling -----------------------------------------------------------------------------------
    async def check_paused_conditions(self) -> None:
        if not du.has_progress_deadline(self.d):
            return
        status = copy.deepcopy(self.d.get("status") or {})
        cond = du.get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == du.TIMED_OUT:
            return
        paused = bool(self.d["spec"].get("paused"))
        paused_cond = cond is not None and cond.get("reason") == du.PAUSED
        if paused and not paused_cond:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", du.PAUSED, "Deployment is paused",
                                                      self.now))
        elif not paused and paused_cond:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", du.RESUMED,
                                                      "Deployment is resumed", self.now))
        else:
            return
        await self.write_status(status)

    async def is_scaling_event(self) -> bool:
        new_rs, old_rss = await self.new_and_old(create=False)
        desired = str(du.replicas_of(self.d))
        for rs in self.all_of(new_rs, old_rss):
            annotated = du.annotations_of(rs).get(du.DESIRED_REPLICAS)
            if du.replicas_of(rs) > 0 and annotated is not None and annotated != desired:
                return True
        return False

    async def sync_scale(self) -> None:
        new_rs, old_rss = await self.new_and_old(create=False)
        await self.scale(new_rs, old_rss)
        new_rs, old_rss = self.current(new_rs), self.currents(old_rss)
        if self.d["spec"].get("paused"):
            await self.cleanup(old_rss)
        await self.sync_status(self.all_of(new_rs, old_rss), new_rs)

    def active_or_latest(self, new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
        active = [rs for rs in self.all_of(new_rs, old_rss) if du.replicas_of(rs) > 0]
        if len(active) == 1:
            return active[0]
        if active:
            return None
        if new_rs is not None:
            return new_rs
        newest = sorted(old_rss, key=du.created_at, reverse=True)
        return newest[0] if newest else None

    def saturated(self, rs: Obj | None) -> bool:
        if rs is None:
            return False
        desired = du.replicas_of(self.d)
        return (du.replicas_of(rs) == desired and du.annotations_of(rs).get(du.DESIRED_REPLICAS) == str(desired)
                and du.available_of(rs) == desired)

    async def scale(self, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        desired = du.replicas_of(self.d)
        target = self.active_or_latest(new_rs, old_rss)
        if target is not None:
            if du.replicas_of(target) != desired:
                await self.scale_rs(target, desired)
            return
        if self.saturated(new_rs):
            for rs in old_rss:
                if du.replicas_of(rs) > 0:
                    await self.scale_rs(rs, 0)
            return
        if du.is_rolling(self.d):
            active = [rs for rs in self.all_of(new_rs, old_rss) if du.replicas_of(rs) > 0]
            sizes = du.proportional_sizes(self.d, active)
            for rs in active:
                await self.scale_rs(rs, sizes[rs["metadata"]["name"]])

    # --- rolling update ------------------------------------------------------------------------------------
    async def rollout_rolling(self) -> None:
        new_rs, old_rss = await self.new_and_old(create=True)
        if await self.reconcile_new(new_rs, old_rss):
            await self.sync_rollout_status(self.all_of(self.current(new_rs), self.currents(old_rss)),
                                           self.current(new_rs))
            return
        new_rs = self.current(new_rs)
        if await self.reconcile_old(new_rs, old_rss):
            await self.sync_rollout_status(self.all_of(new_rs, self.currents(old_rss)), new_rs)
            return
        if du.deployment_complete(self.d, self.d.get("status") or {}):
            await self.cleanup(old_rss)
        await self.sync_rollout_status(self.all_of(new_rs, self.currents(old_rss)), new_rs)

    async def reconcile_new(self, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
        if new_rs is None:
            return False
        desired = du.replicas_of(self.d)
        current = du.replicas_of(new_rs)
        if current == desired:
            return False
        if current > desired:
            scaled, _ = await self.scale_rs(new_rs, desired)
            return scaled
        wanted = du.new_rs_new_replicas(self.d, self.all_of(new_rs, old_rss), new_rs)
        scaled, _ = await self.scale_rs(new_rs, wanted)
        return scaled

    async def reconcile_old(self, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
        if du.total_spec_replicas(old_rss) == 0:
            return False
        budget = du.rolling_scale_down_budget(self.d, self.all_of(new_rs, old_rss), new_rs)
        if budget <= 0:
            return False
        cleaned = await self.cleanup_unhealthy([rs for rs in old_rss if du.replicas_of(rs) > 0], budget)
        old_rss = self.currents(old_rss)
        scaled = await self.scale_down_old_rolling(self.all_of(new_rs, old_rss), old_rss)
        return cleaned + scaled > 0

    async def cleanup_unhealthy(self, old_rss: list[Obj], max_cleanup: int) -> int:
        """Old replicas that are not available can go first: removing them costs no availability."""
        total = 0
        for rs in du.by_creation(old_rss):
            if total >= max_cleanup:
                break
            replicas = du.replicas_of(rs)
            unhealthy = replicas - du.available_of(rs)
            if replicas == 0 or unhealthy <= 0 or not du.status_observed(rs):
                continue  # (an unobserved status may count healthy pods as missing: wait for a fresh one)
            count = min(max_cleanup - total, unhealthy)
            await self.scale_rs(rs, replicas - count)
            total += count
        return total

    async def scale_down_old_rolling(self, all_rss: list[Obj], old_rss: list[Obj]) -> int:
        min_available = du.replicas_of(self.d) - du.max_unavailable(self.d)
        available = sum(du.available_for_scale_down(rs) for rs in all_rss)
        if available <= min_available:
            return 0
        budget = available - min_available
        total = 0
        for rs in du.by_creation(old_rss):
            if total >= budget:
                break
            replicas = du.replicas_of(rs)
            if replicas == 0:
                continue
            count = min(replicas, budget - total)
            await self.scale_rs(rs, replicas - count)
            total += count
        return total

    # --- recreate -------------------------------------------------------------------------------------------
    async def rollout_recreate(self) -> None:
        new_rs, old_rss = await self.new_and_old(create=False)
        scaled_down = False
        for rs in old_rss:
            if du.replicas_of(rs) > 0:
                scaled, _ = await self.scale_rs(rs, 0)
                scaled_down = scaled_down or scaled
        old_rss = self.currents(old_rss)
        if scaled_down or self.old_pods_running(old_rss):
            await self.sync_rollout_status(self.all_of(new_rs, old_rss), new_rs)
            return
        if new_rs is None:
            new_rs, old_rss = await self.new_and_old(create=True)
        if new_rs is not None:
            await self.scale_rs(new_rs, du.replicas_of(self.d))
        new_rs, old_rss = self.current(new_rs), self.currents(old_rss)
        if du.deployment_complete(self.d, self.d.get("status") or {}):
            await self.cleanup(old_rss)
        await self.sync_rollout_status(self.all_of(new_rs, old_rss), new_rs)

    def old_pods_running(self, old_rss: list[Obj]) -> bool:
        """Recreate waits until no pod of an old RS is left (terminating ones included)."""
        for rs in old_rss:
            if int(rs.get("status", {}).get("replicas") or 0) > 0:
                return True
            for pod in dependents_of(self.pods, rs["metadata"]["uid"]):
                if phase(pod) not in ("Failed", "Succeeded"):
                    return True
        return False

    # --- history cleanup -------------------------------------------------------------------------------------
    async def cleanup(self, old_rss: list[Obj]) -> None:
        limit = self.d["spec"].get("revisionHistoryLimit")
        if limit is None:
            return
        cleanable = [rs for rs in old_rss if not is_deleting(rs)]
        excess = len(cleanable) - int(limit)
        if excess <= 0:
            return
        for rs in sorted(cleanable, key=lambda r: (du.revision(r), du.created_at(r)))[:excess]:
            status = rs.get("status") or {}
            if (int(status.get("replicas") or 0) != 0 or du.replicas_of(rs) != 0
                    or int(rs["metadata"].get("generation") or 0) > int(status.get("observedGeneration") or 0)):
                continue
            log.info("deployment %s/%s: deleting old replica set %s", self.namespace, self.name,
                     rs["metadata"]["name"])
            try:
                await self.client.delete("replicasets", rs["metadata"]["name"], namespace=self.namespace)
            except ApiError as err:
                if err.code != 404:
                    raise

    # --- status ---------------------------------------------------------------------------------------------
    async def sync_status(self, all_rss: list[Obj], new_rs: Obj | None) -> None:
        status = du.calculate_status(self.d, all_rss, new_rs, self.now)
        if not status_equal(self.d.get("status") or {}, status):
            await self.write_status(status)

    async def sync_rollout_status(self, all_rss: list[Obj], new_rs: Obj | None) -> None:
        d = self.d
        status = du.calculate_status(d, all_rss, new_rs, self.now)
        if not du.has_progress_deadline(d):
            du.remove_condition(status, "Progressing")
        current = du.get_condition(d.get("status") or {}, "Progressing")
        complete = (status["replicas"] == status["updatedReplicas"] and current is not None
                    and current.get("reason") == du.NEW_RS_AVAILABLE)
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else None
        if du.has_progress_deadline(d) and not complete:
            if du.deployment_complete(d, status):
                message = (f'ReplicaSet "{rs_name}" has successfully progressed.' if rs_name
                           else f'Deployment "{self.name}" has successfully progressed.')
                du.set_condition(status, du.new_condition("Progressing", "True", du.NEW_RS_AVAILABLE, message,
                                                          self.now))
            elif du.deployment_progressing(d, status):
                message = (f'ReplicaSet "{rs_name}" is progressing.' if rs_name
                           else f'Deployment "{self.name}" is progressing.')
                cond = du.new_condition("Progressing", "True", du.RS_UPDATED, message, self.now)
                if current is not None and current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                du.remove_condition(status, "Progressing")
                status["conditions"].append(cond)  # lastUpdateTime moves on: progress resets the deadline
            elif du.deployment_timed_out(d, status, self.now):
                message = (f'ReplicaSet "{rs_name}" has timed out progressing.' if rs_name
                           else f'Deployment "{self.name}" has timed out progressing.')
                du.set_condition(status, du.new_condition("Progressing", "False", du.TIMED_OUT, message,
                                                          self.now))
        failures = [c for rs in all_rss for c in rs.get("status", {}).get("conditions") or []
                    if c.get("type") == "ReplicaFailure" and c.get("status") == "True"]
        if failures:
            f = failures[0]
            du.set_condition(status, du.new_condition("ReplicaFailure", f["status"], f.get("reason", ""),
                                                      f.get("message", ""), self.now))
        else:
            du.remove_condition(status, "ReplicaFailure")
        if status_equal(d.get("status") or {}, status):
            self.requeue_after = self.stuck_requeue(status)
            return
        await self.write_status(status)

    def stuck_requeue(self, status: dict[str, Any]) -> float | None:
        """Check a still-progressing deployment again when its progress deadline passes."""
        cond = du.get_condition(status, "Progressing")
        if (not du.has_progress_deadline(self.d) or cond is None
                or cond.get("reason") in (du.NEW_RS_AVAILABLE, du.TIMED_OUT)):
            return None
        since = parse_time(cond.get("lastUpdateTime"))
        if since is None:
            return None
        after = since + int(self.d["spec"]["progressDeadlineSeconds"]) - self.now
        return max(after + 1.0, 1.0)  # 1 s timestamp resolution: arrive strictly after the deadline


class DeploymentReconciler:
    name = "deployment"

    def __init__(self, *, client: Any, informers: Any, recorder: Any = None, clock: Clock = system_clock) -> None:
        self.client = client
        self.deployments = informers.get("deployments")
        self.replicasets = informers.get("replicasets")
        self.pods = informers.get("pods")
        self.recorder = recorder
        self.clock = clock
        self.queue: Any = None

    @property
    def informers(self) -> list[Any]:
        return [self.deployments, self.replicasets, self.pods]

    # --- events -> keys -----------------------------------------------------------------------------------
    def watch(self, queue: Any) -> None:
        self.queue = queue
        self.deployments.add_handler(on_add=self._enqueue, on_update=lambda _o, new: self._enqueue(new),
                                     on_delete=self._enqueue)
        self.replicasets.add_handler(on_add=self._rs_changed, on_update=self._rs_updated,
                                     on_delete=self._rs_changed)
        self.pods.add_handler(on_delete=self._pod_deleted)

    def _enqueue(self, d: Obj) -> None:
        self.queue.add(object_key(d))

    def _owner_key(self, rs: Obj) -> str | None:
        ref = controller_of(rs)
        if ref is None or ref.get("kind") != "Deployment":
            return None
        key = f"{rs['metadata']['namespace']}/{ref.get('name')}"
        d = self.deployments.store.get(key)
        return key if d is not None and d["metadata"].get("uid") == ref.get("uid") else None

    def _rs_changed(self, rs: Obj) -> None:
        key = self._owner_key(rs)
        if key is not None:
            self.queue.add(key)
        elif controller_of(rs) is None:
            labels = rs["metadata"].get("labels") or {}
            for d in in_namespace(self.deployments, rs["metadata"]["namespace"]):
                if selector_matches(d["spec"].get("selector"), labels):
                    self._enqueue(d)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        old_key = self._owner_key(old)
        if old_key and old_key != self._owner_key(new):
            self.queue.add(old_key)
        self._rs_changed(new)

    def _pod_deleted(self, pod: Obj) -> None:
        """Recreate waits for old pods to be gone; their deletion is what lets it continue."""
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.store.get(f"{pod['metadata']['namespace']}/{ref.get('name')}")
        if rs is not None:
            key = self._owner_key(rs)
            if key is not None:
                d = self.deployments.store.get(key)
                if d is not None and not du.is_rolling(d):
                    self.queue.add(key)

    # --- reconcile ----------------------------------------------------------------------------------------
    async def reconcile(self, key: str) -> Result:
        d = self.deployments.store.get(key)
        if d is None:
            return Result()
        namespace, name = split_key(key)
        selector = d["spec"].get("selector") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            await emit(self.recorder, d, "Warning", "SelectingAll",
                       "This deployment is selecting all pods. A non-empty selector is required.")
            return Result()

        async def fresh_owner() -> Obj | None:
            try:
                fresh: Obj = await self.client.get("deployments", name, namespace=namespace)
                return fresh
            except ApiError as err:
                if err.code == 404:
                    return None
                raise

        candidates = in_namespace(self.replicasets, namespace or "")
        rss = await claim(self.client, "replicasets", d, selector, candidates, fresh_owner)
        return await _DeploymentSync(self, d, rss).run()
