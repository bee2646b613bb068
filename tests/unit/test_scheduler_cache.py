"""SchedulerCache: assumed pods count against their node until confirmed or forgotten."""

from __future__ import annotations

from scheduler.cache import SchedulerCache
from scheduler.podinfo import pod_info
from tests.unit.scheduler_fixtures import make_node, make_pod


def test_assume_confirm_forget() -> None:
    cache = SchedulerCache()
    cache.set_node(make_node("n"))
    row = cache.nodes["n"].row
    pod = pod_info(make_pod("p", cpu="500m", memory="1Gi"))
    cache.assume(pod, "n")
    assert cache.table.requested[row].tolist() == [500, 2**30, 0, 1]
    assert cache.is_assumed("default/p")
    cache.forget("default/p")
    assert cache.table.requested[row].tolist() == [0, 0, 0, 0]
    cache.assume(pod, "n")
    bound = pod_info(make_pod("p", cpu="500m", memory="1Gi", node="n"))
    cache.add_or_update_pod(bound)  # the informer confirms
    assert not cache.is_assumed("default/p")
    cache.forget("default/p")  # no effect once confirmed
    assert cache.table.requested[row].tolist() == [500, 2**30, 0, 1]
    cache.remove_pod("default/p")
    assert cache.table.requested[row].tolist() == [0, 0, 0, 0]


def test_confirmed_on_another_node_moves_the_pod() -> None:
    cache = SchedulerCache()
    cache.set_node(make_node("a"))
    cache.set_node(make_node("b"))
    cache.assume(pod_info(make_pod("p", cpu="1")), "a")
    cache.add_or_update_pod(pod_info(make_pod("p", cpu="1", node="b")))
    assert "default/p" not in cache.nodes["a"].pods and "default/p" in cache.nodes["b"].pods
    assert cache.table.requested[cache.nodes["a"].row][0] == 0


def test_node_rows_recycled_and_static_version_bumped() -> None:
    cache = SchedulerCache()
    cache.set_node(make_node("a"))
    row = cache.nodes["a"].row
    version = cache.table.static_version[row]
    cache.set_node(make_node("a", labels={"x": "1"}))
    assert cache.table.static_version[row] == version + 1
    cache.set_node(make_node("a", labels={"x": "1"}))  # a heartbeat-like update: no bump
    assert cache.table.static_version[row] == version + 1
    cache.remove_node("a")
    assert cache.node_count == 0 and not cache.table.alive[row]
    cache.set_node(make_node("b"))
    assert cache.nodes["b"].row == row


def test_pods_on_unknown_node_keep_a_placeholder() -> None:
    cache = SchedulerCache()
    cache.add_or_update_pod(pod_info(make_pod("p", cpu="1", node="later")))
    assert cache.node_count == 0
    cache.set_node(make_node("later"))
    assert cache.table.requested[cache.nodes["later"].row][0] == 1000
