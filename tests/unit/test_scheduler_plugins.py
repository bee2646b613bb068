"""Scheduler filter and score plugins, table-driven, against a real SchedulerCache."""

from __future__ import annotations

import pytest

from aiokube.api.types import Obj
from scheduler.cache import SchedulerCache
from scheduler.framework import Code, CycleState
from scheduler.plugins import (
    inter_pod_affinity,
    node_affinity,
    node_name,
    node_ports,
    node_unschedulable,
    resources_fit,
    taint_toleration,
    topology_spread,
)
from scheduler.podinfo import effective_requests, pod_info
from tests.unit.scheduler_fixtures import make_node, make_pod

NO_SCHEDULE = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


def cluster(nodes: list[Obj], pods: list[Obj] = ()) -> SchedulerCache:  # type: ignore[assignment]
    cache = SchedulerCache()
    for node in nodes:
        cache.set_node(node)
    for pod in pods:
        cache.add_or_update_pod(pod_info(pod))
    return cache


@pytest.mark.parametrize(("pod_spec", "node_kwargs", "code", "reason"), [
    ({}, {}, Code.SUCCESS, None),
    ({}, {"unschedulable": True}, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, node_unschedulable.REASON),
    ({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]},
     {"unschedulable": True}, Code.SUCCESS, None),
])
def test_node_unschedulable(pod_spec: Obj, node_kwargs: Obj, code: Code, reason: str | None) -> None:
    status = node_unschedulable.new().filter_static(pod_info(make_pod("p", **pod_spec)), make_node("n", **node_kwargs))
    assert status.code is code
    assert status.reasons == ((reason,) if reason else ())


@pytest.mark.parametrize(("wanted", "code"), [("", Code.SUCCESS), ("n", Code.SUCCESS),
                                              ("other", Code.UNSCHEDULABLE_AND_UNRESOLVABLE)])
def test_node_name(wanted: str, code: Code) -> None:
    pod = pod_info(make_pod("p", node=wanted or None))
    assert node_name.new().filter_static(pod, make_node("n")).code is code


@pytest.mark.parametrize(("tolerations", "taints", "code", "reason"), [
    ([], [], Code.SUCCESS, None),
    ([], [NO_SCHEDULE], Code.UNSCHEDULABLE_AND_UNRESOLVABLE, "node(s) had untolerated taint {dedicated: gpu}"),
    ([], [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
     Code.UNSCHEDULABLE_AND_UNRESOLVABLE, "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"),
    ([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}], [NO_SCHEDULE],
     Code.SUCCESS, None),
    ([{"key": "dedicated", "operator": "Equal", "value": "cpu"}], [NO_SCHEDULE],
     Code.UNSCHEDULABLE_AND_UNRESOLVABLE, "node(s) had untolerated taint {dedicated: gpu}"),
    ([{"operator": "Exists"}], [NO_SCHEDULE, {"key": "x", "effect": "NoExecute"}], Code.SUCCESS, None),
    ([], [{"key": "soft", "effect": "PreferNoSchedule"}], Code.SUCCESS, None),
])
def test_taint_toleration_filter(tolerations: list[Obj], taints: list[Obj], code: Code, reason: str | None) -> None:
    pod = pod_info(make_pod("p", tolerations=tolerations))
    status = taint_toleration.new().filter_static(pod, make_node("n", taints=taints))
    assert status.code is code
    assert status.reasons == ((reason,) if reason else ())


def test_taint_toleration_score_prefers_fewer_prefer_no_schedule_taints() -> None:
    plugin = taint_toleration.new()
    pod = pod_info(make_pod("p"))
    soft = [{"key": f"k{i}", "effect": "PreferNoSchedule"} for i in range(2)]
    raw = [plugin.score_static(pod, make_node("a")), plugin.score_static(pod, make_node("b", taints=soft[:1])),
           plugin.score_static(pod, make_node("c", taints=soft))]
    assert raw == [0, 1, 2]
    import numpy as np
    assert plugin.normalize_batch(np.array(raw, dtype=float)).tolist() == [100, 50, 0]


def _affinity(*terms: Obj) -> Obj:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


@pytest.mark.parametrize(("spec", "labels", "fits"), [
    ({"nodeSelector": {"disk": "ssd"}}, {"disk": "ssd"}, True),
    ({"nodeSelector": {"disk": "ssd"}}, {"disk": "hdd"}, False),
    ({"affinity": _affinity({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]})},
     {"zone": "b"}, True),
    ({"affinity": _affinity({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]})},
     {"zone": "a"}, False),
    ({"affinity": _affinity({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]})}, {}, False),
    ({"affinity": _affinity({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]})}, {}, True),
    ({"affinity": _affinity({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]})},
     {"cores": "16"}, True),
    ({"affinity": _affinity({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["8"]}]})},
     {"cores": "16"}, False),
    ({"affinity": _affinity({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]})},
     {}, True),
    ({"affinity": _affinity({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]},
                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]})},
     {"zone": "a"}, True),  # terms are ORed
])
def test_node_affinity_filter(spec: Obj, labels: dict[str, str], fits: bool) -> None:
    status = node_affinity.new().filter_static(pod_info(make_pod("p", **spec)), make_node("n", labels=labels))
    assert status.is_success is fits
    if not fits:
        assert status.reasons == (node_affinity.REASON,)
        assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_node_affinity_preferred_score() -> None:
    preferred = [{"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In",
                                                                    "values": ["a"]}]}},
                 {"weight": 3, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}]
    pod = pod_info(make_pod("p", affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
                                                             preferred}}))
    plugin = node_affinity.new()
    assert plugin.score_static(pod, make_node("n", labels={"zone": "a", "ssd": "1"})) == 8
    assert plugin.score_static(pod, make_node("n", labels={"zone": "b"})) == 0


@pytest.mark.parametrize(("pod_kwargs", "reasons"), [
    ({"cpu": "1", "memory": "1Gi"}, []),
    ({"cpu": "3500m"}, ["Insufficient cpu"]),
    ({"cpu": "3500m", "memory": "7Gi"}, ["Insufficient cpu", "Insufficient memory"]),
    ({}, []),  # asks for nothing: fits a full node (pod count permitting)
])
def test_resources_fit(pod_kwargs: Obj, reasons: list[str]) -> None:
    cache = cluster([make_node("n", cpu="4", memory="8Gi")], [make_pod("old", cpu="1", memory="2Gi", node="n")])
    plugin = resources_fit.new()
    pod = pod_info(make_pod("p", **pod_kwargs))
    status = plugin.filter(CycleState(), pod, cache.nodes["n"])
    assert list(status.reasons) == reasons
    assert bool(plugin.filter_batch(CycleState(), pod, cache.table)[0]) is (not reasons)


def test_too_many_pods() -> None:
    cache = cluster([make_node("n", pods=1)], [make_pod("old", node="n")])
    status = resources_fit.new().filter(CycleState(), pod_info(make_pod("p")), cache.nodes["n"])
    assert status.reasons == (resources_fit.TOO_MANY_PODS,)


def test_effective_requests_init_containers_sidecars_and_overhead() -> None:
    spec = {"containers": [{"resources": {"requests": {"cpu": "200m", "memory": "100Mi"}}},
                           {"resources": {"limits": {"cpu": "300m"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "1", "memory": "10Mi"}}},
                               {"restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}}],
            "overhead": {"cpu": "50m"}}
    requests, non_zero = effective_requests(spec)
    # cpu: max(200+300 app + 100 sidecar, 1000 init) + 50 overhead; memory: max(100Mi, 10Mi)
    assert requests == [1050, 100 * 2**20, 0, 1]
    assert non_zero[0] == 1050


def test_least_allocated_prefers_emptier_node() -> None:
    cache = cluster([make_node("busy"), make_node("idle")], [make_pod("old", cpu="3", memory="6Gi", node="busy")])
    import numpy as np
    scores = resources_fit.new().score_batch(pod_info(make_pod("p", cpu="1", memory="1Gi")), cache.table,
                                             np.array([0, 1]))
    assert scores[1] > scores[0]


@pytest.mark.parametrize(("wanted", "used", "fits"), [
    ([8080], [8080], False), ([8080], [9090], True), ([], [8080], True)])
def test_node_ports(wanted: list[int], used: list[int], fits: bool) -> None:
    cache = cluster([make_node("n")], [make_pod("old", node="n", host_ports=used)])
    plugin = node_ports.new()
    pod = pod_info(make_pod("p", host_ports=wanted))
    state = CycleState()
    if plugin.pre_filter(state, pod, list(cache.nodes.values())).is_skip:
        assert fits
        return
    status = plugin.filter(state, pod, cache.nodes["n"])
    assert status.is_success is fits
    if not fits:
        assert status.reasons == (node_ports.REASON,)


def _anti(selector: dict[str, str], key: str = "kubernetes.io/hostname") -> Obj:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": selector}, "topologyKey": key}]}}


def _aff(selector: dict[str, str], key: str) -> Obj:
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": selector}, "topologyKey": key}]}}


def _inter_pod(cache: SchedulerCache, pod: Obj) -> dict[str, str]:
    plugin = inter_pod_affinity.new(cache)
    state = CycleState()
    info = pod_info(pod)
    assert not plugin.pre_filter(state, info, list(cache.nodes.values())).is_skip
    return {name: plugin.filter(state, info, node).message or "ok" for name, node in sorted(cache.nodes.items())}


def test_inter_pod_anti_affinity_by_hostname() -> None:
    cache = cluster([make_node("a"), make_node("b")], [make_pod("web-1", labels={"app": "web"}, node="a")])
    result = _inter_pod(cache, make_pod("web-2", labels={"app": "web"}, affinity=_anti({"app": "web"})))
    assert result == {"a": inter_pod_affinity.ANTI_AFFINITY_REASON, "b": "ok"}


def test_existing_pods_anti_affinity_is_respected() -> None:
    cache = cluster([make_node("a"), make_node("b")],
                    [make_pod("db", labels={"app": "db"}, node="a", affinity=_anti({"app": "web"}))])
    result = _inter_pod(cache, make_pod("web", labels={"app": "web"}))
    assert result == {"a": inter_pod_affinity.EXISTING_ANTI_AFFINITY_REASON, "b": "ok"}


def test_inter_pod_affinity_by_zone_and_first_pod_self_affinity() -> None:
    nodes = [make_node("a", labels={"zone": "z1"}), make_node("b", labels={"zone": "z2"}), make_node("c")]
    cache = cluster(nodes, [make_pod("cache", labels={"app": "cache"}, node="a")])
    result = _inter_pod(cache, make_pod("web", affinity=_aff({"app": "cache"}, "zone")))
    assert result == {"a": "ok", "b": inter_pod_affinity.AFFINITY_REASON, "c": inter_pod_affinity.AFFINITY_REASON}
    # No pod matches yet, but the pod matches its own term: it may start the group where the key exists.
    first = _inter_pod(cluster(nodes), make_pod("x", labels={"g": "1"}, affinity=_aff({"g": "1"}, "zone")))
    assert first == {"a": "ok", "b": "ok", "c": inter_pod_affinity.AFFINITY_REASON}


def _spread(max_skew: int, mode: str = "DoNotSchedule", key: str = "zone", **extra: int) -> list[Obj]:
    return [{"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": mode,
             "labelSelector": {"matchLabels": {"app": "web"}}, **extra}]


def test_topology_spread_filter() -> None:
    nodes = [make_node("a", labels={"zone": "z1"}), make_node("b", labels={"zone": "z2"}), make_node("c")]
    cache = cluster(nodes, [make_pod(f"w{i}", labels={"app": "web"}, node="a") for i in range(2)])
    plugin = topology_spread.new()
    pod = pod_info(make_pod("new", labels={"app": "web"}, topologySpreadConstraints=_spread(1)))
    state = CycleState()
    assert plugin.pre_filter(state, pod, list(cache.nodes.values())).is_success
    assert plugin.filter(state, pod, cache.nodes["a"]).reasons == (topology_spread.REASON,)
    assert plugin.filter(state, pod, cache.nodes["b"]).is_success
    missing = plugin.filter(state, pod, cache.nodes["c"])
    assert missing.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert missing.reasons == (topology_spread.MISSING_LABEL_REASON,)


def test_topology_spread_min_domains_forces_global_minimum_zero() -> None:
    nodes = [make_node("a", labels={"zone": "z1"})]
    cache = cluster(nodes, [make_pod("w0", labels={"app": "web"}, node="a")])
    plugin = topology_spread.new()
    pod = pod_info(make_pod("new", labels={"app": "web"}, topologySpreadConstraints=_spread(1, minDomains=2)))
    state = CycleState()
    plugin.pre_filter(state, pod, list(cache.nodes.values()))
    # 1 existing + 1 self - min 0 = 2 > maxSkew 1
    assert not plugin.filter(state, pod, cache.nodes["a"]).is_success


def test_topology_spread_schedule_anyway_scores_emptier_domain_higher() -> None:
    nodes = [make_node("a", labels={"zone": "z1"}), make_node("b", labels={"zone": "z2"})]
    cache = cluster(nodes, [make_pod(f"w{i}", labels={"app": "web"}, node="a") for i in range(3)])
    plugin = topology_spread.new()
    pod = pod_info(make_pod("new", labels={"app": "web"}, topologySpreadConstraints=_spread(1, "ScheduleAnyway")))
    state = CycleState()
    assert plugin.pre_filter(state, pod, []).is_skip
    assert plugin.pre_score(state, pod, list(cache.nodes.values())).is_success
    raw = [plugin.score(state, pod, cache.nodes[n]) for n in ("a", "b")]
    normalized = plugin.normalize(state, pod, raw)
    assert normalized[1] > normalized[0]


def test_assumed_pods_anti_affinity_counts_before_binding() -> None:
    cache = cluster([make_node("a"), make_node("b")])
    cache.assume(pod_info(make_pod("db", labels={"app": "db"}, affinity=_anti({"app": "web"}))), "b")
    result = _inter_pod(cache, make_pod("web", labels={"app": "web"}))
    assert result == {"a": "ok", "b": inter_pod_affinity.EXISTING_ANTI_AFFINITY_REASON}
