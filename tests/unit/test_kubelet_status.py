"""compute_pod_status: phase, conditions and container statuses from runtime records."""

from __future__ import annotations

from kubelet.runtime_state import ContainerRecord, PodRuntimeStatus, SandboxRecord
from kubelet.status import ProbeView, compute_pod_status, qos_class


def make_pod(policy: str = "Always", init: bool = False) -> dict:
    spec: dict = {"restartPolicy": policy, "containers": [{"name": "a", "image": "busybox"}]}
    if init:
        spec["initContainers"] = [{"name": "i", "image": "busybox"}]
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u1"}, "spec": spec,
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def rt_with(*containers: ContainerRecord) -> PodRuntimeStatus:
    rt = PodRuntimeStatus("u1", sandboxes=[SandboxRecord("sb", True, 0, 1.0, ip="10.1.2.3")])
    rt.containers = list(containers)
    return rt


def c(name: str, state: str, exit_code: int = 0, restarts: int = 0, reason: str = "") -> ContainerRecord:
    return ContainerRecord(id=f"{name}{restarts}", name=name, sandbox_id="sb", state=state, restart_count=restarts,
                           spec_hash="", image="busybox", image_ref="sha256:abc", started_at=100.0,
                           finished_at=200.0 if state == "exited" else 0.0, exit_code=exit_code, reason=reason)


def test_running_and_ready() -> None:
    status = compute_pod_status(make_pod(), rt_with(c("a", "running")), {}, ProbeView({"a"}, {"a"}),
                                host_ip="192.0.2.1", now=300.0)
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.1.2.3" and status["podIPs"] == [{"ip": "10.1.2.3"}]
    assert status["hostIP"] == "192.0.2.1"
    conds = {x["type"]: x for x in status["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["ContainersReady"]["status"] == "True"
    assert conds["PodScheduled"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    a = status["containerStatuses"][0]
    assert a["ready"] and a["started"] and a["containerID"] == "containerd://a0"
    assert a["state"]["running"]["startedAt"] == "1970-01-01T00:01:40Z" and a["imageID"] == "sha256:abc"


def test_not_ready_without_probe_success() -> None:
    status = compute_pod_status(make_pod(), rt_with(c("a", "running")), {}, ProbeView(set(), {"a"}),
                                host_ip="h")
    conds = {x["type"]: x for x in status["conditions"]}
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "ContainersNotReady"


def test_crash_loop_waiting_with_last_state() -> None:
    waiting = {"a": ("CrashLoopBackOff", "back-off 20s restarting failed container=a")}
    status = compute_pod_status(make_pod(), rt_with(c("a", "exited", 2, restarts=3), c("a", "exited", 2, 2)),
                                waiting, ProbeView(), host_ip="h")
    a = status["containerStatuses"][0]
    assert a["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert a["lastState"]["terminated"]["exitCode"] == 2 and a["restartCount"] == 3
    assert status["phase"] == "Running"  # restarting under Always


def test_terminal_phases() -> None:
    ok = compute_pod_status(make_pod("Never"), rt_with(c("a", "exited", 0)), {}, ProbeView(), host_ip="h")
    assert ok["phase"] == "Succeeded"
    assert ok["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    bad = compute_pod_status(make_pod("Never"), rt_with(c("a", "exited", 1)), {}, ProbeView(), host_ip="h")
    assert bad["phase"] == "Failed"
    assert bad["containerStatuses"][0]["state"]["terminated"]["reason"] == "Error"
    oom = compute_pod_status(make_pod("Never"), rt_with(c("a", "exited", 137, reason="OOMKilled")), {},
                             ProbeView(), host_ip="h")
    assert oom["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled"


def test_pending_while_init_runs_then_initialized() -> None:
    pod = make_pod(init=True)
    status = compute_pod_status(pod, rt_with(c("i", "running")), {}, ProbeView(), host_ip="h")
    assert status["phase"] == "Pending"
    conds = {x["type"]: x["status"] for x in status["conditions"]}
    assert conds["Initialized"] == "False"
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    done = compute_pod_status(pod, rt_with(c("i", "exited", 0), c("a", "running")), {}, ProbeView({"a"}, {"a"}),
                              host_ip="h")
    assert done["phase"] == "Running"
    assert {x["type"]: x["status"] for x in done["conditions"]}["Initialized"] == "True"


def test_image_error_is_waiting_pending() -> None:
    status = compute_pod_status(make_pod(), rt_with(), {"a": ("ErrImagePull", "no such image")}, ProbeView(),
                                host_ip="h")
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"]["waiting"] == {"reason": "ErrImagePull",
                                                                   "message": "no such image"}


def test_transition_time_is_kept_while_status_unchanged() -> None:
    pod = make_pod()
    first = compute_pod_status(pod, rt_with(c("a", "running")), {}, ProbeView({"a"}, {"a"}), host_ip="h", now=100)
    pod["status"] = first
    second = compute_pod_status(pod, rt_with(c("a", "running")), {}, ProbeView({"a"}, {"a"}), host_ip="h", now=500)
    assert first == second


def test_qos_classes() -> None:
    pod = make_pod()
    assert qos_class(pod) == "BestEffort"
    pod["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert qos_class(pod) == "Guaranteed"
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}
    assert qos_class(pod) == "Burstable"
