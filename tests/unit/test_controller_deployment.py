"""Deployment reconcile against in-memory fakes, with the ReplicaSet controller and a fake 'kubelet' that
marks pods Ready: rolling updates keep within maxSurge/maxUnavailable, Recreate, pause, history cleanup."""

from __future__ import annotations

from typing import Any

from controllers import deployment_util as du
from controllers.deployment import DeploymentReconciler
from controllers.ownerrefs import object_key
from controllers.podutil import is_active, is_ready
from controllers.replicaset import ReplicaSetReconciler
from controllers.testing import FakeClient, FakeInformers, FakeQueue

NOW = 1_704_067_200.0


class World:
    def __init__(self) -> None:
        self.now = NOW
        self.client = FakeClient(clock=lambda: self.now)
        self.informers = FakeInformers()
        self.deployments = DeploymentReconciler(client=self.client, informers=self.informers,
                                                clock=lambda: self.now)
        self.replicasets = ReplicaSetReconciler(client=self.client, informers=self.informers,
                                                clock=lambda: self.now)
        self.deployments.watch(FakeQueue())
        self.replicasets.watch(FakeQueue())
        self.max_pods = 0
        self.min_available = 10**9

    def sync(self) -> None:
        self.informers.sync(self.client)

    async def make_ready(self, limit: int | None = None) -> None:
        """Mark up to `limit` not-ready pods Ready (all when None)."""
        for pod in self.client.all("pods"):
            if limit is not None and limit <= 0:
                break
            if is_ready(pod):
                continue
            pod["status"] = {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
            await self.client.update_status("pods", pod)
            if limit is not None:
                limit -= 1

    def observe(self) -> None:
        pods = [p for p in self.client.all("pods") if is_active(p)]
        self.max_pods = max(self.max_pods, len(pods))
        self.min_available = min(self.min_available, sum(1 for p in pods if is_ready(p)))

    async def step(self, ready_per_step: int | None = None) -> None:
        self.sync()
        for key in [object_key(d) for d in self.client.all("deployments")]:
            await self.deployments.reconcile(key)
        self.sync()
        for key in [object_key(r) for r in self.client.all("replicasets")]:
            await self.replicasets.reconcile(key)
            self.observe()
        self.sync()
        await self.make_ready(ready_per_step)
        self.observe()
        self.sync()
        for key in [object_key(r) for r in self.client.all("replicasets")]:
            await self.replicasets.reconcile(key)  # status (availability) after readiness changed
        self.sync()

    async def converge(self, steps: int = 40, ready_per_step: int | None = None) -> None:
        for _ in range(steps):
            await self.step(ready_per_step)

    def deployment(self) -> dict[str, Any]:
        return self.client.all("deployments")[0]

    async def set_image(self, image: str) -> None:
        d = self.deployment()
        d["spec"]["template"]["spec"]["containers"][0]["image"] = image
        await self.client.update("deployments", d)


def new_deployment(replicas: int = 10, **strategy: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
                     "strategy": strategy or {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "v1"}]}}}}


def images(world: World) -> set[str]:
    return {p["spec"]["containers"][0]["image"] for p in world.client.all("pods")}


async def test_first_rollout_creates_hashed_replicaset_and_completes() -> None:
    w = World()
    w.client.seed("deployments", new_deployment(3))
    await w.converge(5)
    [rs] = w.client.all("replicasets")
    pod_hash = rs["metadata"]["labels"][du.POD_TEMPLATE_HASH]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", du.POD_TEMPLATE_HASH: pod_hash}
    ann = rs["metadata"]["annotations"]
    assert ann[du.REVISION] == "1" and ann[du.DESIRED_REPLICAS] == "3" and ann[du.MAX_REPLICAS] == "4"
    d = w.deployment()
    assert d["metadata"]["annotations"][du.REVISION] == "1"
    st = d["status"]
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"], st["availableReplicas"]) == (3, 3, 3, 3)
    assert st["observedGeneration"] == d["metadata"]["generation"]
    progressing = du.get_condition(st, "Progressing")
    assert progressing is not None and progressing["reason"] == du.NEW_RS_AVAILABLE
    available = du.get_condition(st, "Available")
    assert available is not None and available["status"] == "True"


async def test_rolling_update_stays_within_surge_and_unavailability() -> None:
    w = World()
    w.client.seed("deployments", new_deployment(10))
    await w.converge(5)
    w.max_pods, w.min_available = 0, 10**9
    await w.set_image("v2")
    await w.converge(60, ready_per_step=2)  # pods become ready slowly: many small steps
    assert images(w) == {"v2"}
    assert len(w.client.all("pods")) == 10
    assert w.max_pods <= 10 + 3  # maxSurge 25% of 10 rounds up
    assert w.min_available >= 10 - 2  # maxUnavailable 25% of 10 rounds down
    rss = sorted(w.client.all("replicasets"), key=du.revision)
    assert [du.replicas_of(r) for r in rss] == [0, 10]
    assert [du.revision(r) for r in rss] == [1, 2]
    progressing = du.get_condition(w.deployment()["status"], "Progressing")
    assert progressing is not None and progressing["reason"] == du.NEW_RS_AVAILABLE


async def test_rollback_reuses_old_replicaset_with_new_revision() -> None:
    w = World()
    w.client.seed("deployments", new_deployment(2))
    await w.converge(5)
    await w.set_image("v2")
    await w.converge(10)
    await w.set_image("v1")  # what `kubectl rollout undo` does: the old template comes back
    await w.converge(10)
    assert images(w) == {"v1"}
    rss = w.client.all("replicasets")
    assert len(rss) == 2
    current = max(rss, key=du.revision)
    assert du.revision(current) == 3 and current["metadata"]["annotations"][du.REVISION_HISTORY] == "1"
    assert w.deployment()["metadata"]["annotations"][du.REVISION] == "3"


async def test_recreate_scales_old_to_zero_before_new() -> None:
    w = World()
    w.client.seed("deployments", new_deployment(3, type="Recreate"))
    await w.converge(5)
    await w.set_image("v2")
    w.sync()
    await w.deployments.reconcile("ns/web")
    w.sync()
    for key in [object_key(r) for r in w.client.all("replicasets")]:
        await w.replicasets.reconcile(key)
    assert len(w.client.all("replicasets")) == 1  # no new RS while old pods exist
    assert w.client.all("pods") == []
    await w.converge(5)
    assert images(w) == {"v2"} and len(w.client.all("pods")) == 3


async def test_paused_deployment_scales_but_does_not_roll_out() -> None:
    w = World()
    w.client.seed("deployments", new_deployment(2))
    await w.converge(5)
    d = w.deployment()
    d["spec"]["paused"] = True
    d["spec"]["replicas"] = 4
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "v2"
    await w.client.update("deployments", d)
    await w.converge(5)
    assert images(w) == {"v1"} and len(w.client.all("pods")) == 4
    cond = du.get_condition(w.deployment()["status"], "Progressing")
    assert cond is not None and cond["reason"] == du.PAUSED and cond["status"] == "Unknown"
    d = w.deployment()
    d["spec"]["paused"] = False
    await w.client.update("deployments", d)
    await w.converge(15)
    assert images(w) == {"v2"} and len(w.client.all("pods")) == 4


async def test_revision_history_limit_deletes_oldest_empty_replicasets() -> None:
    w = World()
    d = new_deployment(1)
    d["spec"]["revisionHistoryLimit"] = 1
    w.client.seed("deployments", d)
    await w.converge(4)
    for image in ("v2", "v3", "v4"):
        await w.set_image(image)
        await w.converge(6)
    revisions = sorted(du.revision(r) for r in w.client.all("replicasets"))
    assert revisions == [3, 4]


async def test_progress_deadline_exceeded_when_pods_never_become_ready() -> None:
    w = World()
    d = new_deployment(2)
    d["spec"]["progressDeadlineSeconds"] = 30
    w.client.seed("deployments", d)
    for _ in range(3):
        await w.step(ready_per_step=0)
    w.now += 31
    await w.step(ready_per_step=0)
    cond = du.get_condition(w.deployment()["status"], "Progressing")
    assert cond is not None and cond["status"] == "False" and cond["reason"] == du.TIMED_OUT


async def test_stale_replicaset_status_after_a_crash_does_not_over_scale_down() -> None:
    """The ReplicaSet controller dies after deleting old pods but before reporting it: the old ReplicaSet's
    status still counts 10 available. The Deployment controller must not trust that beyond its spec."""
    w = World()
    w.client.seed("deployments", new_deployment(10))
    await w.converge(5)
    [old] = w.client.all("replicasets")
    stale_status = old["status"]
    assert stale_status["availableReplicas"] == 10
    await w.set_image("v2")
    for _ in range(10):  # roll until the old ReplicaSet was scaled down and its pods deleted
        w.sync()
        await w.deployments.reconcile("ns/web")
        w.sync()
        for rs in w.client.all("replicasets"):
            await w.replicasets.reconcile(object_key(rs))
        old = next(r for r in w.client.all("replicasets") if du.revision(r) == 1)
        if du.replicas_of(old) < 10:
            break
    old_pods = [p for p in w.client.all("pods") if p["spec"]["containers"][0]["image"] == "v1"]
    assert len(old_pods) == du.replicas_of(old) == 8
    await w.client.update_status("replicasets", {**old, "status": stale_status})  # the report that never came
    await w.make_ready()  # the new pods get Ready and their ReplicaSet says so
    w.sync()
    new = next(r for r in w.client.all("replicasets") if du.revision(r) == 2)
    await w.replicasets.reconcile(object_key(new))
    w.sync()

    for _ in range(2):  # scale the new ReplicaSet up, then the old one down (the ReplicaSet controller is down)
        await w.deployments.reconcile("ns/web")
        w.sync()

    old = next(r for r in w.client.all("replicasets") if du.revision(r) == 1)
    ready_new = sum(1 for p in w.client.all("pods") if p["spec"]["containers"][0]["image"] == "v2" and is_ready(p))
    assert du.replicas_of(old) + ready_new >= 10 - 2, (du.replicas_of(old), ready_new)


async def test_status_written_before_deletions_are_observed_does_not_over_scale_down() -> None:
    """No crash needed: the ReplicaSet controller reports status from the pods it saw before deleting the
    excess, with observedGeneration already caught up (as Kubernetes' does). Until the deletions come back
    through its watch, the old ReplicaSet says 10 available at spec 8. The Deployment controller acting in that
    window must count at most 8 (its spec), or it scales the old ReplicaSet down by the pods already going
    (seen in test_controllers_crash: ready pods fell to 5 with maxUnavailable 2)."""
    w = World()
    w.client.seed("deployments", new_deployment(10))
    await w.converge(5)
    await w.set_image("v2")
    w.sync()
    await w.deployments.reconcile("ns/web")  # new RS at 3 (surge), old 10 -> 8
    w.sync()
    old = next(r for r in w.client.all("replicasets") if du.revision(r) == 1)
    new = next(r for r in w.client.all("replicasets") if du.revision(r) == 2)
    assert (du.replicas_of(old), du.replicas_of(new)) == (8, 3)
    await w.replicasets.reconcile(object_key(old))  # deletes 2 pods, reports the 10 it saw, generation observed
    await w.replicasets.reconcile(object_key(new))  # creates 3 pods
    old = w.client.objects["replicasets"][object_key(old)]
    assert old["status"]["availableReplicas"] == 10 and du.status_observed(old)
    assert sum(1 for p in w.client.all("pods") if p["spec"]["containers"][0]["image"] == "v1") == 8
    await w.make_ready()  # the new pods get Ready; only the new ReplicaSet's controller pass runs again
    w.sync()
    await w.replicasets.reconcile(object_key(new))
    w.sync()

    for _ in range(2):  # scale the new ReplicaSet up, then the old one down, before the old status catches up
        await w.deployments.reconcile("ns/web")
        w.sync()

    old = next(r for r in w.client.all("replicasets") if du.revision(r) == 1)
    ready_new = sum(1 for p in w.client.all("pods") if p["spec"]["containers"][0]["image"] == "v2" and is_ready(p))
    assert du.replicas_of(old) < 8  # the rollout did move on
    assert du.replicas_of(old) + ready_new >= 10 - 2, (du.replicas_of(old), ready_new)
