"""What the runtime holds for each pod, as plain dataclasses: the input to planning and to status.

Built from CRI List calls (labels/annotations identify pod and container) plus ContainerStatus for the
details a list does not carry (exit code, reason, timestamps).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from kubelet import labels as L
from kubelet.cri import CriError, RuntimeClient, pb

# CRI timestamps are nanoseconds since the epoch.
NS = 1_000_000_000

CONTAINER_STATES = {
    pb.CONTAINER_CREATED: "created",
    pb.CONTAINER_RUNNING: "running",
    pb.CONTAINER_EXITED: "exited",
    pb.CONTAINER_UNKNOWN: "unknown",
}


@dataclass
class ContainerRecord:
    id: str
    name: str
    sandbox_id: str
    state: str  # created | running | exited | unknown
    restart_count: int
    spec_hash: str
    image: str = ""
    image_ref: str = ""
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    log_path: str = ""
    grace_period: int = 30

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def exited(self) -> bool:
        return self.state in ("exited", "unknown")


@dataclass
class SandboxRecord:
    id: str
    ready: bool
    attempt: int
    created_at: float
    ip: str = ""
    ips: list[str] = field(default_factory=list)


@dataclass
class PodRuntimeStatus:
    uid: str
    name: str = ""
    namespace: str = ""
    sandboxes: list[SandboxRecord] = field(default_factory=list)  # newest first
    containers: list[ContainerRecord] = field(default_factory=list)  # newest first

    def latest(self, name: str) -> ContainerRecord | None:
        return next((c for c in self.containers if c.name == name), None)

    def history(self, name: str) -> list[ContainerRecord]:
        return [c for c in self.containers if c.name == name]

    @property
    def ready_sandbox(self) -> SandboxRecord | None:
        return next((s for s in self.sandboxes if s.ready), None)

    @property
    def running_containers(self) -> list[ContainerRecord]:
        return [c for c in self.containers if c.running]


def _container_from_list(c: pb.Container) -> ContainerRecord:
    return ContainerRecord(
        id=c.id,
        name=c.labels.get(L.CONTAINER_NAME, c.metadata.name),
        sandbox_id=c.pod_sandbox_id,
        state=CONTAINER_STATES.get(c.state, "unknown"),
        restart_count=int(c.annotations.get(L.RESTART_COUNT, c.metadata.attempt) or 0),
        spec_hash=c.annotations.get(L.CONTAINER_HASH, ""),
        image=c.image.image,
        image_ref=c.image_ref,
        created_at=c.created_at / NS,
        grace_period=int(c.annotations.get(L.TERMINATION_GRACE, "30") or 30),
    )


def _apply_status(record: ContainerRecord, st: pb.ContainerStatus) -> None:
    record.state = CONTAINER_STATES.get(st.state, "unknown")
    record.started_at = st.started_at / NS
    record.finished_at = st.finished_at / NS
    record.exit_code = st.exit_code
    record.reason = st.reason
    record.message = st.message
    record.log_path = st.log_path
    record.image = st.image.image or record.image
    record.image_ref = st.image_ref or record.image_ref


async def list_runtime_pods(
    runtime: RuntimeClient, node_name: str, *, uid: str | None = None, details: bool = True
) -> dict[str, PodRuntimeStatus]:
    """Every pod (by uid) this node manages in the runtime; with `details`, ContainerStatus for each container."""
    selector = {L.MANAGED_BY: node_name}
    if uid:
        selector[L.POD_UID] = uid
    pods: dict[str, PodRuntimeStatus] = {}
    for s in await runtime.list_pod_sandboxes(selector):
        pod_uid = s.labels.get(L.POD_UID, "")
        rec = pods.setdefault(pod_uid, PodRuntimeStatus(pod_uid, s.metadata.name, s.metadata.namespace))
        rec.sandboxes.append(SandboxRecord(s.id, s.state == pb.SANDBOX_READY, s.metadata.attempt, s.created_at / NS))
    for c in await runtime.list_containers(selector):
        pod_uid = c.labels.get(L.POD_UID, "")
        rec = pods.setdefault(pod_uid, PodRuntimeStatus(pod_uid, c.labels.get(L.POD_NAME, ""),
                                                        c.labels.get(L.POD_NAMESPACE, "")))
        rec.containers.append(_container_from_list(c))
    for rec in pods.values():
        rec.sandboxes.sort(key=lambda s: s.created_at, reverse=True)
        rec.containers.sort(key=lambda c: (c.restart_count, c.created_at), reverse=True)
        if not details:
            continue
        for sandbox in rec.sandboxes:
            if sandbox.ready:
                with contextlib.suppress(CriError):
                    st = (await runtime.pod_sandbox_status(sandbox.id)).status
                    sandbox.ip = st.network.ip
                    sandbox.ips = [st.network.ip, *(a.ip for a in st.network.additional_ips)] if st.network.ip else []
        for container in rec.containers:
            with contextlib.suppress(CriError):
                _apply_status(container, await runtime.container_status(container.id))
    return pods
