"""PLEG relist: reports exactly the pods whose containers or sandboxes changed state, appeared or vanished."""

from __future__ import annotations

from typing import Any

from kubelet import labels as L
from kubelet.cri import pb
from kubelet.pleg import Pleg


class FakeRuntime:
    def __init__(self) -> None:
        self.sandboxes: list[pb.PodSandbox] = []
        self.containers: list[pb.Container] = []

    async def list_pod_sandboxes(self, labels: dict[str, str] | None = None) -> list[pb.PodSandbox]:
        return list(self.sandboxes)

    async def list_containers(self, labels: dict[str, str] | None = None) -> list[pb.Container]:
        return list(self.containers)


def sandbox(uid: str, sid: str, state: Any = pb.SANDBOX_READY) -> pb.PodSandbox:
    return pb.PodSandbox(id=sid, state=state, labels={L.POD_UID: uid})


def container(uid: str, cid: str, state: Any) -> pb.Container:
    return pb.Container(id=cid, state=state, labels={L.POD_UID: uid})


async def test_relist_reports_changes_only() -> None:
    runtime = FakeRuntime()
    seen: list[str] = []
    pleg = Pleg(runtime, "n1", seen.append)  # type: ignore[arg-type]
    runtime.sandboxes = [sandbox("a", "sa"), sandbox("b", "sb")]
    runtime.containers = [container("a", "ca", pb.CONTAINER_RUNNING), container("b", "cb", pb.CONTAINER_RUNNING)]
    assert await pleg.relist() == {"a", "b"}
    assert await pleg.relist() == set()  # nothing changed
    runtime.containers[1] = container("b", "cb", pb.CONTAINER_EXITED)
    assert await pleg.relist() == {"b"}
    runtime.sandboxes = [sandbox("b", "sb")]
    runtime.containers = [container("b", "cb", pb.CONTAINER_EXITED)]
    assert await pleg.relist() == {"a"}  # pod a vanished
    assert pleg.known_uids() == {"b"}
    assert sorted(seen) == ["a", "a", "b", "b"]
