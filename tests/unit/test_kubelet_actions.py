"""compute_pod_actions: the plan for one pod from its spec and what the runtime holds."""

from __future__ import annotations

from kubelet.actions import backoff_key, compute_pod_actions
from kubelet.backoff import Backoff
from kubelet.labels import container_hash
from kubelet.runtime_state import ContainerRecord, PodRuntimeStatus, SandboxRecord

NOW = 10_000.0


def make_pod(containers: list[str], init: list[str] | None = None, policy: str = "Always") -> dict:
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"restartPolicy": policy,
                     "containers": [{"name": n, "image": "busybox"} for n in containers],
                     "initContainers": [{"name": n, "image": "busybox"} for n in init or []]}}


def spec_of(pod: dict, name: str) -> dict:
    return next(c for c in pod["spec"]["containers"] + pod["spec"]["initContainers"] if c["name"] == name)


def rec(pod: dict, name: str, state: str, *, exit_code: int = 0, restarts: int = 0, cid: str = "",
        finished: float = NOW - 1) -> ContainerRecord:
    return ContainerRecord(id=cid or f"{name}-{restarts}", name=name, sandbox_id="sb1", state=state,
                           restart_count=restarts, spec_hash=container_hash(spec_of(pod, name)),
                           exit_code=exit_code, finished_at=finished if state == "exited" else 0.0,
                           created_at=float(restarts))


def runtime(*containers: ContainerRecord, ready: bool = True, sandboxes: int = 1) -> PodRuntimeStatus:
    rt = PodRuntimeStatus("u1", "p", "default")
    rt.sandboxes = [SandboxRecord(f"sb{i}", ready and i == sandboxes, i - 1, float(i)) for i in
                    range(sandboxes, 0, -1)]
    rt.containers = sorted(containers, key=lambda c: (c.restart_count, c.created_at), reverse=True)
    return rt


def backoff() -> Backoff:
    return Backoff(10, 300, clock=lambda: NOW)


def test_new_pod_creates_sandbox_and_starts_all_containers() -> None:
    pod = make_pod(["a", "b"])
    actions = compute_pod_actions(pod, PodRuntimeStatus("u1"), backoff())
    assert actions.create_sandbox and not actions.kill_pod
    assert actions.sandbox_attempt == 0
    assert actions.containers_to_start == ["a", "b"]


def test_new_pod_with_init_containers_starts_only_the_first_init() -> None:
    pod = make_pod(["app"], init=["i1", "i2"])
    actions = compute_pod_actions(pod, PodRuntimeStatus("u1"), backoff())
    assert actions.create_sandbox
    assert actions.next_init_container == "i1" and actions.containers_to_start == []


def test_init_containers_advance_one_at_a_time() -> None:
    pod = make_pod(["app"], init=["i1", "i2"])
    actions = compute_pod_actions(pod, runtime(rec(pod, "i1", "exited")), backoff())
    assert actions.next_init_container == "i2" and actions.sandbox_id == "sb1"
    running = compute_pod_actions(pod, runtime(rec(pod, "i1", "exited"), rec(pod, "i2", "running")), backoff())
    assert running.idle
    done = compute_pod_actions(pod, runtime(rec(pod, "i1", "exited"), rec(pod, "i2", "exited")), backoff())
    assert done.containers_to_start == ["app"]


def test_failed_init_container_under_never_fails_the_pod() -> None:
    pod = make_pod(["app"], init=["i1"], policy="Never")
    actions = compute_pod_actions(pod, runtime(rec(pod, "i1", "exited", exit_code=1)), backoff())
    assert actions.init_failed and actions.kill_pod and actions.next_init_container is None


def test_failed_init_container_is_retried_under_always() -> None:
    pod = make_pod(["app"], init=["i1"])
    actions = compute_pod_actions(pod, runtime(rec(pod, "i1", "exited", exit_code=1)), backoff())
    assert actions.next_init_container == "i1" and not actions.init_failed


def test_running_container_with_unchanged_spec_is_kept() -> None:
    pod = make_pod(["a"])
    assert compute_pod_actions(pod, runtime(rec(pod, "a", "running")), backoff()).idle


def test_changed_spec_kills_and_recreates() -> None:
    pod = make_pod(["a"])
    record = rec(pod, "a", "running", cid="old")
    pod["spec"]["containers"][0]["image"] = "busybox:2"
    actions = compute_pod_actions(pod, runtime(record), backoff())
    assert list(actions.containers_to_kill) == ["old"] and actions.containers_to_start == ["a"]


def test_liveness_failure_kills_and_restarts_unless_never() -> None:
    pod = make_pod(["a"])
    actions = compute_pod_actions(pod, runtime(rec(pod, "a", "running", cid="c")), backoff(),
                                  liveness_failed=frozenset({"a"}))
    assert "c" in actions.containers_to_kill and actions.containers_to_start == ["a"]
    never = make_pod(["a"], policy="Never")
    actions = compute_pod_actions(never, runtime(rec(never, "a", "running", cid="c")), backoff(),
                                  liveness_failed=frozenset({"a"}))
    assert "c" in actions.containers_to_kill and actions.containers_to_start == []


def test_probe_level_grace_period_applies_to_a_liveness_kill() -> None:
    pod = make_pod(["a", "b"])
    spec_of(pod, "a")["livenessProbe"] = {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 3}
    spec_of(pod, "b")["startupProbe"] = {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 0}
    actions = compute_pod_actions(pod, runtime(rec(pod, "a", "running", cid="ca"), rec(pod, "b", "running", cid="cb")),
                                  backoff(), liveness_failed=frozenset({"a", "b"}))
    assert actions.containers_to_kill["ca"].grace == 3 and actions.containers_to_kill["cb"].grace == 0
    plain = make_pod(["a"])
    actions = compute_pod_actions(plain, runtime(rec(plain, "a", "running", cid="c")), backoff(),
                                  liveness_failed=frozenset({"a"}))
    assert actions.containers_to_kill["c"].grace is None  # the pod's terminationGracePeriodSeconds


def test_exited_container_restarts_per_policy() -> None:
    for policy, exit_code, restarts in [("Always", 0, True), ("Always", 1, True), ("OnFailure", 1, True),
                                        ("OnFailure", 0, False), ("Never", 1, False)]:
        pod = make_pod(["a"], policy=policy)
        actions = compute_pod_actions(pod, runtime(rec(pod, "a", "exited", exit_code=exit_code)), backoff())
        assert (actions.containers_to_start == ["a"]) is restarts, (policy, exit_code)
        if not restarts:
            assert actions.kill_pod  # all done for good: stop the sandbox


def test_back_off_holds_the_restart_and_says_why() -> None:
    pod = make_pod(["a"])
    b = backoff()
    b.next(backoff_key(pod, "a"), NOW - 5)  # failed 5 s ago with a 10 s back-off in force
    actions = compute_pod_actions(pod, runtime(rec(pod, "a", "exited", exit_code=1, finished=NOW - 5)), b)
    assert actions.containers_to_start == [] and not actions.kill_pod
    reason, message = actions.waiting["a"]
    assert reason == "CrashLoopBackOff"
    assert message.startswith("back-off 10s restarting failed container=a pod=p_default(u1)")
    # Once the back-off has elapsed it starts again.
    later = Backoff(10, 300, clock=lambda: NOW + 6)
    later.next(backoff_key(pod, "a"), NOW - 5)
    actions = compute_pod_actions(pod, runtime(rec(pod, "a", "exited", exit_code=1, finished=NOW - 5)), later)
    assert actions.containers_to_start == ["a"]


def test_dead_sandbox_is_replaced_with_a_new_attempt() -> None:
    pod = make_pod(["a"])
    actions = compute_pod_actions(pod, runtime(rec(pod, "a", "exited", exit_code=137), ready=False), backoff())
    assert actions.create_sandbox and actions.sandbox_attempt == 1
    assert actions.containers_to_start == ["a"]


def test_dead_sandbox_of_a_never_pod_is_not_recreated() -> None:
    pod = make_pod(["a"], policy="Never")
    actions = compute_pod_actions(pod, runtime(rec(pod, "a", "exited"), ready=False), backoff())
    assert not actions.create_sandbox and actions.idle


def test_on_failure_pod_that_succeeded_gets_no_new_sandbox() -> None:
    pod = make_pod(["a"], policy="OnFailure")
    actions = compute_pod_actions(pod, runtime(rec(pod, "a", "exited", exit_code=0), ready=False), backoff())
    assert not actions.create_sandbox


def test_created_but_never_started_container_is_replaced() -> None:
    pod = make_pod(["a"])
    actions = compute_pod_actions(pod, runtime(rec(pod, "a", "created", cid="c")), backoff())
    assert "c" in actions.containers_to_kill and actions.containers_to_start == ["a"]


def test_two_ready_sandboxes_start_over() -> None:
    pod = make_pod(["a"])
    rt = runtime(rec(pod, "a", "running"), sandboxes=2)
    for s in rt.sandboxes:
        s.ready = True
    actions = compute_pod_actions(pod, rt, backoff())
    assert actions.kill_pod and actions.create_sandbox and actions.sandbox_attempt == 2
