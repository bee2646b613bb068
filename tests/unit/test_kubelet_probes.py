"""Probe timing on a fake clock: initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold,
failureThreshold, and startup gating liveness/readiness."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from aiokube.client.testing import FakeClock, settle
from kubelet.handlers import HandlerResult
from kubelet.probes import ProbeManager
from kubelet.runtime_state import ContainerRecord, PodRuntimeStatus, SandboxRecord


class ScriptedProbes:
    """Answers each probe (named by its exec command) from a script; records when and with which timeout."""

    def __init__(self, clock: FakeClock, script: dict[str, list[bool]]) -> None:
        self.clock = clock
        self.script = script
        self.calls: list[tuple[str, float, float]] = []  # (probe, time, timeout)

    async def __call__(self, probe: Obj, *, timeout: float, **_: Any) -> HandlerResult:  # noqa: ASYNC109
        name = probe["exec"]["command"][0]
        self.calls.append((name, self.clock.time, timeout))
        results = self.script.get(name) or [True]
        return HandlerResult(results.pop(0) if len(results) > 1 else results[0])

    def times(self, name: str) -> list[float]:
        return [t for n, t, _ in self.calls if n == name]


def setup(container: Obj, script: dict[str, list[bool]]) -> tuple[ProbeManager, ScriptedProbes, FakeClock, list[str]]:
    clock = FakeClock()
    runner = ScriptedProbes(clock, script)
    changes: list[str] = []
    manager = ProbeManager(None, changes.append, sleep=clock.sleep, run_probe=runner)  # type: ignore[arg-type]
    pod = {"metadata": {"uid": "u1", "name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "app", "image": "busybox", **container}]}}
    rt = PodRuntimeStatus("u1", sandboxes=[SandboxRecord("s1", True, 0, 1.0, ip="10.0.0.5")],
                          containers=[ContainerRecord("c1", "app", "s1", "running", 0, "h")])
    manager.sync(pod, rt)
    return manager, runner, clock, changes


def probe(name: str, **timing: int) -> Obj:
    return {"exec": {"command": [name]}, **timing}


async def advance_to(clock: FakeClock, t: float) -> None:
    await clock.advance(t - clock.time)


async def test_readiness_honours_delay_period_timeout_and_both_thresholds() -> None:
    readiness = probe("ready", initialDelaySeconds=5, periodSeconds=3, timeoutSeconds=4, successThreshold=2,
                      failureThreshold=2)
    manager, runner, clock, changes = setup({"readinessProbe": readiness},
                                            {"ready": [True, True, False, False, True]})
    await settle()
    assert runner.calls == [] and manager.view("u1").ready == set()
    await advance_to(clock, 4.9)
    assert runner.calls == []  # initialDelaySeconds
    await advance_to(clock, 5)
    assert runner.times("ready") == [5] and manager.view("u1").ready == set()  # 1 success < successThreshold 2
    await advance_to(clock, 8)
    assert manager.view("u1").ready == {"app"} and changes == ["u1"]
    await advance_to(clock, 11)
    assert manager.view("u1").ready == {"app"}  # 1 failure < failureThreshold 2
    await advance_to(clock, 14)
    assert manager.view("u1").ready == set() and changes == ["u1", "u1"]
    assert runner.times("ready") == [5, 8, 11, 14]  # periodSeconds 3
    assert {timeout for _, _, timeout in runner.calls} == {4.0}  # timeoutSeconds passed to each probe
    manager.close()


async def test_liveness_fails_after_failure_threshold_and_stops_probing() -> None:
    liveness = probe("live", periodSeconds=2, failureThreshold=3)
    manager, runner, clock, changes = setup({"livenessProbe": liveness}, {"live": [False]})
    await settle()
    assert runner.times("live") == [0]  # no initial delay: probed at once
    await advance_to(clock, 2)
    assert manager.liveness_failed("u1") == frozenset()
    await advance_to(clock, 4)
    assert manager.liveness_failed("u1") == {"app"} and changes == ["u1"]
    await advance_to(clock, 20)
    assert runner.times("live") == [0, 2, 4]  # the doomed instance is not probed further
    assert {timeout for _, _, timeout in runner.calls} == {1.0}  # timeoutSeconds defaults to 1
    manager.close()


async def test_startup_probe_gates_liveness_and_readiness() -> None:
    spec = {"startupProbe": probe("startup", periodSeconds=1, failureThreshold=10),
            "livenessProbe": probe("live", periodSeconds=10),
            "readinessProbe": probe("ready", periodSeconds=10)}
    manager, runner, clock, _ = setup(spec, {"startup": [False, False, True]})
    await settle()
    await advance_to(clock, 1)
    assert runner.times("live") == [] and runner.times("ready") == []
    assert manager.view("u1").started == set()
    await advance_to(clock, 2)  # third startup probe succeeds
    assert manager.view("u1").started == {"app"}
    assert runner.times("live") == [2] and runner.times("ready") == [2]
    assert manager.view("u1").ready == {"app"}
    await advance_to(clock, 12)
    assert runner.times("startup") == [0, 1, 2]  # startup probing ends with its first success
    assert runner.times("live") == [2, 12]
    manager.close()


async def test_failed_startup_probe_marks_the_container_for_restart() -> None:
    manager, runner, clock, changes = setup({"startupProbe": probe("startup", periodSeconds=5, failureThreshold=2)},
                                            {"startup": [False]})
    await settle()
    await advance_to(clock, 5)
    assert manager.liveness_failed("u1") == {"app"} and changes == ["u1"]
    assert runner.times("startup") == [0, 5]
    manager.close()


async def test_every_failed_probe_is_reported_for_an_unhealthy_event() -> None:
    clock = FakeClock()
    runner = ScriptedProbes(clock, {"live": [False]})
    failures: list[tuple[str, str]] = []
    manager = ProbeManager(None, lambda _uid: None, sleep=clock.sleep, run_probe=runner,  # type: ignore[arg-type]
                           on_failure=lambda uid, message: failures.append((uid, message)))
    pod = {"metadata": {"uid": "u1", "name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "app", "image": "busybox",
                                    "livenessProbe": probe("live", periodSeconds=1, failureThreshold=2)}]}}
    manager.sync(pod, PodRuntimeStatus("u1", sandboxes=[SandboxRecord("s1", True, 0, 1.0, ip="10.0.0.5")],
                                       containers=[ContainerRecord("c1", "app", "s1", "running", 0, "h")]))
    await settle()
    await advance_to(clock, 1)
    # One report per failed probe run (the recorder aggregates repeats), each naming the probe kind.
    assert failures == [("u1", "Liveness probe failed: "), ("u1", "Liveness probe failed: ")]
    manager.close()
