"""Dead-container pruning: the newest exited instance of each container stays (for `logs --previous`)."""

from __future__ import annotations

from kubelet.backoff import Backoff
from kubelet.pod_runtime import PodRuntimeManager
from kubelet.runtime_state import ContainerRecord, PodRuntimeStatus, SandboxRecord
from kubelet.specs import NodeSettings
from kubelet.volumes import VolumeManager


class RecordingRuntime:
    def __init__(self) -> None:
        self.removed_containers: list[str] = []
        self.removed_sandboxes: list[str] = []

    async def remove_container(self, container_id: str) -> None:
        self.removed_containers.append(container_id)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self.removed_sandboxes.append(sandbox_id)


def container(cid: str, name: str, state: str, restarts: int, sandbox: str = "s2") -> ContainerRecord:
    return ContainerRecord(id=cid, name=name, sandbox_id=sandbox, state=state, restart_count=restarts, spec_hash="h")


async def test_keeps_running_and_newest_exited_per_name_and_drops_older_sandboxes(tmp_path: object) -> None:
    runtime = RecordingRuntime()
    manager = PodRuntimeManager(runtime, NodeSettings(node_name="n", root_dir=str(tmp_path)),  # type: ignore[arg-type]
                                VolumeManager(str(tmp_path), {}), None, Backoff(1, 2), Backoff(1, 2))  # type: ignore[arg-type]
    rt = PodRuntimeStatus(
        "uid-1",
        sandboxes=[SandboxRecord("s2", True, 1, 20.0), SandboxRecord("s1", False, 0, 10.0),
                   SandboxRecord("s0", False, 0, 5.0)],
        containers=[  # newest first, as list_runtime_pods sorts them
            container("app-3", "app", "running", 3),
            container("app-2", "app", "exited", 2),
            container("app-1", "app", "exited", 1),
            container("app-0", "app", "exited", 0, sandbox="s1"),
            container("side-1", "side", "exited", 1),
            container("side-0", "side", "exited", 0),
        ],
    )
    await manager.remove_dead_containers(rt)
    assert runtime.removed_containers == ["app-1", "app-0", "side-0"]
    # s1 still held a listed container when planning (the record is a snapshot), s0 held none.
    assert runtime.removed_sandboxes == ["s0"]
