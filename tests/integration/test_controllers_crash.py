"""Crash safety of the controller-manager, run as a real process (`python -m controllers`) against real etcd +
API server.

1. SIGKILL at random points of a 10-replica rolling update, restarted each time: a watch proves the pod count
   never exceeds replicas + maxSurge (and ready pods never drop below replicas - maxUnavailable), and the
   system converges with exactly the wanted pods and no object lost.
2. Two replicas with leader election: only the holder of the Lease runs controllers; SIGKILL it and the other
   takes over within the lease duration (short durations through the flags).

Pods never run (no node agent here): the checker marks them Ready through pods/status, as a kubelet would.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiokube.api.errors import ApiError
from aiokube.client import ApiClient
from controllers import deployment_util as du
from controllers.manager import LEASE_NAME, LEASE_NAMESPACE
from controllers.podutil import is_active
from controllers.testing import ManagerProcess, RolloutChecker, eventually, write_kubeconfig

pytestmark = pytest.mark.etcd

CONTROLLERS = "replicaset,deployment,garbagecollector"
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 3.0, 2.0, 0.5
ELECTION_FLAGS = ("--leader-elect-lease-duration", f"{LEASE_DURATION}s",
                  "--leader-elect-renew-deadline", f"{RENEW_DEADLINE}s",
                  "--leader-elect-retry-period", f"{RETRY_PERIOD}s")


@pytest.fixture
def kubeconfig(apiserver: str, tmp_path: Path) -> str:
    return write_kubeconfig(str(tmp_path / "kubeconfig"), apiserver)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[ManagerProcess]]:
    """Every controller-manager a test starts; all are stopped (by PID) at the end, whatever happened."""
    started: list[ManagerProcess] = []
    yield started
    for proc in started:
        proc.kill()


def deployment(name: str, replicas: int, image: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def start(processes: list[ManagerProcess], kubeconfig: str, tmp_path: Path, *args: str) -> ManagerProcess:
    proc = ManagerProcess(kubeconfig, str(tmp_path / f"cm-{len(processes)}.log"), "--controllers", CONTROLLERS,
                          *args).start()
    processes.append(proc)
    return proc


async def active_pods(client: ApiClient, namespace: str, app: str) -> list[dict[str, Any]]:
    items = (await client.list("pods", namespace=namespace, label_selector=f"app={app}"))["items"]
    return [p for p in items if is_active(p)]


async def rolled_out(client: ApiClient, namespace: str, name: str, replicas: int, image: str) -> bool:
    d = await client.get("deployments", name, namespace=namespace)
    st = d.get("status") or {}
    pods = await active_pods(client, namespace, name)
    return (st.get("observedGeneration") == d["metadata"]["generation"] and st.get("updatedReplicas") == replicas
            and st.get("availableReplicas") == replicas and st.get("replicas") == replicas
            and len(pods) == replicas and all(p["spec"]["containers"][0]["image"] == image for p in pods))


async def test_sigkill_during_rolling_update_converges_without_extra_pods(
        client: ApiClient, namespace: str, kubeconfig: str, tmp_path: Path,
        processes: list[ManagerProcess]) -> None:
    # AIOKUBE_CRASH_SEED replays the kill schedule of a failed run (the seed is in every assertion message).
    seed = int(os.environ.get("AIOKUBE_CRASH_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    # Bystanders that must survive everything: an unowned pod with the app's labels is adopted by the
    # ReplicaSet (so it is left out), but these are never anyone's to delete.
    await client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"},
                                       "data": {"k": "v"}}, namespace=namespace)
    await client.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bystander",
                                                                                   "labels": {"app": "other"}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}},
                        namespace=namespace)
    await client.create("deployments", deployment("web", 10, "busybox:1"), namespace=namespace)
    rv = (await client.list("pods", namespace=namespace))["metadata"]["resourceVersion"]
    # A slow "kubelet" (pods Ready 1 s after creation) stretches the rollout over the kills.
    checker = RolloutChecker(client, namespace, "web", ready_delay=1.0)
    watcher = asyncio.create_task(checker.run(rv))
    # Leader election stays on, as in production: each restart must first wait out the dead process's Lease.
    manager = start(processes, kubeconfig, tmp_path, *ELECTION_FLAGS)
    try:
        await eventually(lambda: rolled_out(client, namespace, "web", 10, "busybox:1"), within=30)
        checker.max_active, checker.tracking_ready = 0, True
        checker.record()
        await client.patch("deployments", "web",
                           {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}},
                           namespace=namespace, patch_type="strategic")
        kills_mid_rollout = 0
        for _ in range(4):
            # Random points: some kills land right after a restart (mid-sync), some mid-rollout.
            await asyncio.sleep(rng.uniform(0.05, 1.5))
            manager.kill()
            kills_mid_rollout += not await rolled_out(client, namespace, "web", 10, "busybox:2")
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            manager = start(processes, kubeconfig, tmp_path, *ELECTION_FLAGS)
            await asyncio.sleep(LEASE_DURATION * rng.uniform(0.8, 1.6))  # past the Lease wait, into the work
        await eventually(lambda: rolled_out(client, namespace, "web", 10, "busybox:2"), within=60)
        await asyncio.sleep(1.0)  # let any straggling duplicate show itself
        assert await rolled_out(client, namespace, "web", 10, "busybox:2")
        assert kills_mid_rollout >= 1, (seed, kills_mid_rollout)
    finally:
        watcher.cancel()
    assert checker.max_active <= 10 + 3, (seed, checker.max_active)  # maxSurge 25% of 10 rounds up to 3
    assert checker.min_ready >= 10 - 2, (seed, checker.min_ready, checker.worst)  # maxUnavailable: 25% → 2

    replicasets = (await client.list("replicasets", namespace=namespace))["items"]
    assert sorted((du.revision(r), du.replicas_of(r)) for r in replicasets) == [(1, 0), (2, 10)], seed
    new_rs = next(r for r in replicasets if du.revision(r) == 2)
    pods = await active_pods(client, namespace, "web")
    assert len(pods) == 10
    assert all(p["metadata"]["ownerReferences"][0]["uid"] == new_rs["metadata"]["uid"] for p in pods)
    await client.get("configmaps", "keep", namespace=namespace)  # no lost objects
    await client.get("pods", "bystander", namespace=namespace)
    await client.get("deployments", "web", namespace=namespace)


async def lease_holder(client: ApiClient) -> str:
    lease = await client.get("coordination.k8s.io/v1/leases", LEASE_NAME, namespace=LEASE_NAMESPACE)
    return str(lease.get("spec", {}).get("holderIdentity") or "")


def holder_pid(identity: str) -> int:
    return int(identity.rpartition("_")[2]) if identity else -1


async def test_only_the_leader_acts_and_a_killed_leader_is_replaced(
        client: ApiClient, namespace: str, kubeconfig: str, tmp_path: Path,
        processes: list[ManagerProcess]) -> None:
    first = start(processes, kubeconfig, tmp_path, *ELECTION_FLAGS)
    second = start(processes, kubeconfig, tmp_path, *ELECTION_FLAGS)
    by_pid = {first.pid: first, second.pid: second}

    async def held() -> int:
        try:
            pid = holder_pid(await lease_holder(client))
        except ApiError:
            return 0
        return pid if pid in by_pid else 0

    leader = by_pid[await eventually(held, within=15)]
    follower = second if leader is first else first
    await client.create("deployments", deployment("web", 5, "busybox:1"), namespace=namespace)

    async def five_pods() -> bool:
        return len(await active_pods(client, namespace, "web")) == 5

    await eventually(five_pods, within=15)
    await asyncio.sleep(1.0)
    assert len(await active_pods(client, namespace, "web")) == 5
    assert "starting controllers" in leader.log()
    assert "starting controllers" not in follower.log(), follower.log()  # the standby never ran a controller

    killed_at = time.monotonic()
    leader.kill()

    async def follower_holds() -> bool:
        return holder_pid(await lease_holder(client)) == follower.pid

    await eventually(follower_holds, within=LEASE_DURATION * 3, interval=0.05)
    takeover = time.monotonic() - killed_at
    # The standby sees the Lease unchanged for lease_duration (counted from the leader's last renewal, at most
    # one jittered retry period before the kill), then takes it on its next attempt.
    assert takeover <= LEASE_DURATION + 2 * RETRY_PERIOD * 1.2 + 0.5, takeover
    await client.patch("deployments", "web", {"spec": {"replicas": 7}}, namespace=namespace, patch_type="merge")

    async def seven_pods() -> bool:
        return len(await active_pods(client, namespace, "web")) == 7

    await eventually(seven_pods, within=15)
    assert "starting controllers" in follower.log()
