"""The grace period `PodRuntimeManager.kill_pod` stops containers with: an explicit one (0 = SIGKILL now) wins,
else the pod's, else (pod object gone) each container's own, recorded at creation."""

from __future__ import annotations

from pathlib import Path

from kubelet.backoff import Backoff
from kubelet.pod_runtime import PodRuntimeManager
from kubelet.runtime_state import ContainerRecord, PodRuntimeStatus
from kubelet.specs import NodeSettings
from kubelet.volumes import VolumeManager


class RecordingRuntime:
    def __init__(self) -> None:
        self.stops: list[tuple[str, int]] = []

    async def stop_container(self, container_id: str, timeout_seconds: int) -> None:
        self.stops.append((container_id, timeout_seconds))


def manager(tmp_path: Path) -> tuple[PodRuntimeManager, RecordingRuntime]:
    runtime = RecordingRuntime()
    node = NodeSettings(node_name="n1", root_dir=str(tmp_path))
    return PodRuntimeManager(runtime, node, VolumeManager(str(tmp_path), {}), None,  # type: ignore[arg-type]
                             Backoff(), Backoff()), runtime


def runtime_pod() -> PodRuntimeStatus:
    return PodRuntimeStatus("u1", containers=[
        ContainerRecord("c1", "a", "s1", "running", 0, "h", grace_period=7),
        ContainerRecord("c2", "b", "s1", "exited", 0, "h", grace_period=7)])


async def test_an_explicit_grace_wins_even_without_the_pod_object(tmp_path: Path) -> None:
    mgr, runtime = manager(tmp_path)
    await mgr.kill_pod(None, runtime_pod(), 0)
    assert runtime.stops == [("c1", 0)]  # forced: no grace, and the exited container is left alone


async def test_without_the_pod_each_container_keeps_its_recorded_grace(tmp_path: Path) -> None:
    mgr, runtime = manager(tmp_path)
    await mgr.kill_pod(None, runtime_pod())
    assert runtime.stops == [("c1", 7)]


async def test_with_the_pod_its_termination_grace_applies(tmp_path: Path) -> None:
    mgr, runtime = manager(tmp_path)
    pod = {"metadata": {"uid": "u1", "name": "p", "namespace": "default"},
           "spec": {"terminationGracePeriodSeconds": 4, "containers": [{"name": "a", "image": "busybox"}]}}
    await mgr.kill_pod(pod, runtime_pod())
    assert runtime.stops == [("c1", 4)]
