"""Algorithm: fit over the node table, sampling, tie-breaking, the FailedScheduling message, preemption choice."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from aiokube.api.types import Obj
from scheduler.algorithm import Algorithm, FitError, feasible_nodes_to_find
from scheduler.cache import SchedulerCache
from scheduler.framework import CycleState
from scheduler.plugins import default_preemption
from scheduler.podinfo import PodInfo, pod_info
from scheduler.profile import default_plugins
from tests.unit.scheduler_fixtures import make_node, make_pod

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def setup(nodes: list[Obj], pods: list[Obj] = ()) -> tuple[SchedulerCache, Algorithm]:  # type: ignore[assignment]
    cache = SchedulerCache()
    for node in nodes:
        cache.set_node(node)
    for pod in pods:
        cache.add_or_update_pod(pod_info(pod))
    return cache, Algorithm(cache, default_plugins(cache), rng=random.Random(1))


@pytest.mark.parametrize(("nodes", "expected"), [(10, 10), (100, 100), (1000, 420), (5000, 500), (50_000, 2500)])
def test_feasible_nodes_to_find(nodes: int, expected: int) -> None:
    assert feasible_nodes_to_find(nodes) == expected


def test_unschedulable_message_matches_kubernetes() -> None:
    _, algorithm = setup([make_node("cp", taints=[CONTROL_PLANE_TAINT]), make_node("w1", cpu="1"),
                              make_node("w2", cpu="1")])
    with pytest.raises(FitError) as info:
        algorithm.schedule(CycleState(), pod_info(make_pod("big", cpu="2")))
    fit = info.value
    assert fit.message() == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                             "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu.")
    fit.post_filter_message = ("preemption: 0/3 nodes are available: 1 Preemption is not helpful for "
                               "scheduling, 2 No preemption victims found for incoming pod.")
    assert fit.message().endswith("2 No preemption victims found for incoming pod.")


def test_no_nodes() -> None:
    _, algorithm = setup([])
    with pytest.raises(FitError) as info:
        algorithm.schedule(CycleState(), pod_info(make_pod("p")))
    assert info.value.message() == "no nodes available to schedule pods"


def test_fills_by_least_allocated_and_respects_capacity() -> None:
    cache, algorithm = setup([make_node(f"n{i}", cpu="2") for i in range(4)])
    placed: Counter[str] = Counter()
    for i in range(8):
        pod = pod_info(make_pod(f"p{i}", cpu="1"))
        node = algorithm.schedule(CycleState(), pod)
        cache.assume(pod, node)
        placed[node] += 1
    assert placed == {f"n{i}": 2 for i in range(4)}  # spread evenly, never over capacity
    with pytest.raises(FitError):
        algorithm.schedule(CycleState(), pod_info(make_pod("extra", cpu="1")))


def test_static_checks_are_cached_per_signature() -> None:
    cache, algorithm = setup([make_node(f"n{i}", labels={"zone": "a" if i % 2 else "b"}) for i in range(200)])
    for i in range(50):
        pod = pod_info(make_pod(f"p{i}", cpu="10m", nodeSelector={"zone": "a"}))
        node = algorithm.schedule(CycleState(), pod)
        assert int(node[1:]) % 2 == 1
        cache.assume(pod, node)
    assert algorithm.static.rows_computed == 200  # once per node, not once per pod
    cache.set_node(make_node("n0", labels={"zone": "a"}))
    algorithm.schedule(CycleState(), pod_info(make_pod("again", nodeSelector={"zone": "a"})))
    assert algorithm.static.rows_computed == 201  # only the changed node was re-checked


def test_sampling_rotates_through_nodes() -> None:
    cache, algorithm = setup([make_node(f"n{i:04d}") for i in range(1000)])
    seen = set()
    for i in range(30):
        pod = pod_info(make_pod(f"p{i}", cpu="1m"))
        node = algorithm.schedule(CycleState(), pod)
        cache.assume(pod, node)
        seen.add(node)
    assert len(seen) == 30


def _victim(name: str, priority: int, cpu: str = "1") -> Obj:
    return make_pod(name, cpu=cpu, node="n1" if name.startswith("a") else "n2", priority=priority)


async def test_preemption_picks_cheapest_node_and_minimal_victims() -> None:
    pods = [_victim("a-low", 1), _victim("a-mid", 5), _victim("b-high", 50), _victim("b-low", 1)]
    cache, algorithm = setup([make_node("n1", cpu="2"), make_node("n2", cpu="2")], pods)
    evicted: list[tuple[str, list[str]]] = []

    async def evict(pod: PodInfo, node: str, victims: list[PodInfo]) -> None:
        evicted.append((node, [v.name for v in victims]))

    def check(state: CycleState, pod: PodInfo, node: object) -> object:
        skipped, _ = algorithm.pre_filter(state.clone(), pod)
        return algorithm.run_filters(state, pod, node, skipped)  # type: ignore[arg-type]

    preemption = default_preemption.new(cache, check, evict)  # type: ignore[arg-type]
    pod = pod_info(make_pod("vip", cpu="1", priority=100))
    with pytest.raises(FitError) as info:
        algorithm.schedule(CycleState(), pod)
    node, status = await preemption.post_filter(CycleState(), pod, info.value.statuses)
    assert status.is_success and node == "n1"
    assert evicted == [("n1", ["a-low"])]  # a-mid (priority 5) is reprieved: one victim suffices


async def test_preemption_not_helpful_message() -> None:
    cache, algorithm = setup([make_node("cp", taints=[CONTROL_PLANE_TAINT]), make_node("w", cpu="1")],
                             [make_pod("same", cpu="1", node="w")])

    async def evict(pod: PodInfo, node: str, victims: list[PodInfo]) -> None:
        raise AssertionError("nothing should be evicted")

    def check(state: CycleState, pod: PodInfo, node: object) -> object:
        return algorithm.run_filters(state, pod, node, set())  # type: ignore[arg-type]

    preemption = default_preemption.new(cache, check, evict)  # type: ignore[arg-type]
    pod = pod_info(make_pod("p", cpu="1"))
    with pytest.raises(FitError) as info:
        algorithm.schedule(CycleState(), pod)
    _, status = await preemption.post_filter(CycleState(), pod, info.value.statuses)
    info.value.post_filter_message = status.message
    assert info.value.message() == (
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }. preemption: 0/2 nodes are available: "
        "1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling.")
    never = pod_info(make_pod("n", cpu="1", priority=10, preemptionPolicy="Never"))
    _, status = await preemption.post_filter(CycleState(), never, info.value.statuses)
    assert status.message == "preemption: not eligible due to preemptionPolicy=Never."
