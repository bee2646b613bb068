"""Score plugins table by table (NodeResourcesBalancedAllocation, preferred InterPodAffinity) and configurable
score weights: the --score-weights / KubeSchedulerConfiguration parsers and a weight that changes the node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from aiokube.api.types import Obj
from scheduler.__main__ import main, parse_args, score_weights
from scheduler.config import ConfigError, parse_score_weights, weights_from_config
from scheduler.framework import CycleState
from scheduler.plugins import balanced_allocation, inter_pod_affinity
from scheduler.podinfo import pod_info
from scheduler.scheduler import Scheduler
from tests.unit.scheduler_fixtures import make_node, make_pod
from tests.unit.test_scheduler_loop import Clock, FakeClient, FakeRecorder, run_one
from tests.unit.test_scheduler_plugins import cluster


@pytest.mark.parametrize(("existing", "incoming", "expected"), [
    # (cpu, memory) already requested on a 4-cpu/8Gi node, the pod's request, the score.
    ((None, None), ("1", "2Gi"), 100),       # 25% cpu, 25% memory: perfectly balanced
    ((None, None), ("2", None), 75),         # 50% cpu, 0% memory: deviation 0.25
    (("4", None), (None, None), 50),         # 100% cpu, 0% memory: deviation 0.5
    (("3", None), ("2", "2Gi"), 62),         # cpu capped at 100%, memory 25%: 62.5 floored
    (("2", "4Gi"), ("1", "1Gi"), 93),        # 75% vs 62.5%: deviation 0.0625
])
def test_balanced_allocation(existing: tuple[str | None, str | None], incoming: tuple[str | None, str | None],
                             expected: int) -> None:
    pods = [make_pod("old", cpu=existing[0], memory=existing[1], node="n")] if any(existing) else []
    cache = cluster([make_node("n", cpu="4", memory="8Gi")], pods)
    pod = pod_info(make_pod("p", cpu=incoming[0], memory=incoming[1]))
    assert balanced_allocation.new().score_batch(pod, cache.table, np.array([0])).tolist() == [expected]


def _preferred(kind: str, weight: int, selector: dict[str, str], key: str = "zone") -> Obj:
    return {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": weight, "podAffinityTerm": {"labelSelector": {"matchLabels": selector}, "topologyKey": key}}]}}


ZONED_NODES = [make_node(name, labels={"zone": name[0]}) for name in ("a1", "a2", "b1", "c1")]
EXISTING = [make_pod("db", labels={"app": "db"}, node="a1"), make_pod("cache", labels={"app": "cache"}, node="b1")]


@pytest.mark.parametrize(("affinity", "expected"), [
    # Attraction to db's zone: every node of zone a scores top, the rest bottom.
    (_preferred("podAffinity", 10, {"app": "db"}), {"a1": 100, "a2": 100, "b1": 0, "c1": 0}),
    # Repulsion from cache's zone: zone b is the worst, the others tie at the top.
    (_preferred("podAntiAffinity", 5, {"app": "cache"}), {"a1": 100, "a2": 100, "b1": 0, "c1": 100}),
    # Both: raw a=+10, b=-5, c=0, normalised over [-5, 10].
    ({**_preferred("podAffinity", 10, {"app": "db"}), **_preferred("podAntiAffinity", 5, {"app": "cache"})},
     {"a1": 100, "a2": 100, "b1": 0, "c1": 33}),
    # Matching nothing: all equal, so the plugin does not move the choice.
    (_preferred("podAffinity", 10, {"app": "none"}), {"a1": 0, "a2": 0, "b1": 0, "c1": 0}),
    # A term in another namespace than the existing pods' does not match them.
    ({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm": {
        "labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone", "namespaces": ["other"]}}]}},
     {"a1": 0, "a2": 0, "b1": 0, "c1": 0}),
])
def test_preferred_inter_pod_affinity_score(affinity: Obj, expected: dict[str, int]) -> None:
    cache = cluster(ZONED_NODES, EXISTING)
    plugin = inter_pod_affinity.new(cache)
    pod = pod_info(make_pod("p", affinity=affinity))
    state = CycleState()
    nodes = [cache.nodes[name] for name in expected]
    assert plugin.pre_score(state, pod, nodes).is_success
    raw = [plugin.score(state, pod, node) for node in nodes]
    assert dict(zip(expected, plugin.normalize(state, pod, raw), strict=True)) == expected


def test_no_preferred_terms_skips_the_score() -> None:
    cache = cluster(ZONED_NODES, EXISTING)
    assert inter_pod_affinity.new(cache).pre_score(CycleState(), pod_info(make_pod("p")), []).is_skip


def test_parse_score_weights() -> None:
    assert parse_score_weights("NodeResourcesFit=10, TaintToleration=1") == {"NodeResourcesFit": 10,
                                                                            "TaintToleration": 1}
    assert parse_score_weights("") == {}
    with pytest.raises(ConfigError):
        parse_score_weights("NodeResourcesFit")
    with pytest.raises(ConfigError):
        parse_score_weights("NodeResourcesFit=high")


KUBE_SCHEDULER_CONFIGURATION = """
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
  plugins:
    score:
      enabled:
      - name: NodeResourcesFit
        weight: 10
      - name: TaintToleration
        weight: 1
      - name: PodTopologySpread
"""


def test_weights_from_kube_scheduler_configuration() -> None:
    document = yaml.safe_load(KUBE_SCHEDULER_CONFIGURATION)
    assert weights_from_config(document) == {"NodeResourcesFit": 10, "TaintToleration": 1}
    assert weights_from_config({"kind": "KubeSchedulerConfiguration"}) == {}
    with pytest.raises(ConfigError):
        weights_from_config({"profiles": [{"schedulerName": "other"}]})


@pytest.mark.parametrize(("weights", "chosen"), [
    (None, "busy"),  # default weights: TaintToleration (3) avoids the PreferNoSchedule node
    ({"NodeResourcesFit": 10, "TaintToleration": 1}, "tainted-empty"),  # LeastAllocated now dominates
])
async def test_score_weight_changes_the_chosen_node(weights: dict[str, int] | None, chosen: str) -> None:
    client = FakeClient()
    scheduler = Scheduler(client, recorder=FakeRecorder(), clock=Clock(), weights=weights)  # type: ignore[arg-type]
    scheduler.on_node_add(make_node("tainted-empty", taints=[{"key": "soft", "effect": "PreferNoSchedule"}]))
    scheduler.on_node_add(make_node("busy"))
    scheduler.on_pod_add(make_pod("old", cpu="2", memory="4Gi", node="busy"))
    scheduler.on_pod_add(make_pod("web", cpu="1", memory="1Gi"))
    await run_one(scheduler)
    assert client.bindings == [("web", chosen)]


def test_command_line_weights_override_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "scheduler.yaml"
    config.write_text(KUBE_SCHEDULER_CONFIGURATION)
    args = parse_args(["--kubeconfig", "k", "--config", str(config), "--score-weights", "TaintToleration=7"])
    assert score_weights(args) == {"NodeResourcesFit": 10, "TaintToleration": 7}
    assert main(["--kubeconfig", "k", "--score-weights", "oops"]) == 2  # rejected before connecting
