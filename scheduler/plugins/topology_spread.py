"""PodTopologySpread: keep matching pods spread across topology domains within maxSkew.

DoNotSchedule constraints filter: placing the pod in a domain must keep (count + 1 - global minimum) <= maxSkew,
where counts are matching, non-terminating pods in the pod's namespace on nodes that pass the pod's node
selector/affinity and carry the topology key. With `minDomains` and fewer eligible domains the global minimum
is 0. ScheduleAnyway constraints only score: fewer matching pods in the node's domains is better.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from aiokube.api.types import Obj
from scheduler.cache import NodeInfo
from scheduler.framework import MAX_NODE_SCORE, SKIP, SUCCESS, CycleState, Status
from scheduler.plugins.node_affinity import required_matches
from scheduler.plugins.selectors import label_selector_matches
from scheduler.podinfo import PodInfo

NAME = "PodTopologySpread"
REASON = "node(s) didn't match pod topology spread constraints"
MISSING_LABEL_REASON = "node(s) didn't match pod topology spread constraints (missing required label)"


def _constraints(pod: PodInfo, mode: str) -> list[Obj]:
    return [c for c in pod.spec.get("topologySpreadConstraints") or [] if c.get("whenUnsatisfiable") == mode]


def _count(pod: PodInfo, constraint: Obj, nodes: Collection[NodeInfo]) -> Counter[str]:
    key = constraint["topologyKey"]
    counts: Counter[str] = Counter()
    for node in nodes:
        value = node.labels.get(key)
        if value is None or node.node is None or not required_matches(pod, node.node):
            continue
        counts[value] += sum(1 for other in node.pods.values()
                             if other.namespace == pod.namespace and not other.is_terminating
                             and label_selector_matches(constraint.get("labelSelector"), other.labels))
    return counts


class PodTopologySpread:
    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]) -> Status:
        constraints = _constraints(pod, "DoNotSchedule")
        if not constraints:
            return SKIP
        computed = []
        for constraint in constraints:
            counts = _count(pod, constraint, nodes)
            minimum = min(counts.values(), default=0)
            if len(counts) < int(constraint.get("minDomains") or 1):
                minimum = 0
            self_match = 1 if label_selector_matches(constraint.get("labelSelector"), pod.labels) else 0
            computed.append((constraint, counts, minimum, self_match))
        state[NAME] = computed
        return SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        for constraint, counts, minimum, self_match in state[NAME]:
            value = node.labels.get(constraint["topologyKey"])
            if value is None:
                return Status.unresolvable(MISSING_LABEL_REASON, plugin=NAME)
            if counts.get(value, 0) + self_match - minimum > int(constraint.get("maxSkew", 1)):
                return Status.unschedulable(REASON, plugin=NAME)
        return SUCCESS

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]) -> Status:
        constraints = _constraints(pod, "ScheduleAnyway")
        if not constraints:
            return SKIP
        state[NAME + "/score"] = [(c, _count(pod, c, nodes)) for c in constraints]
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return sum(counts.get(node.labels.get(c["topologyKey"], ""), 0) + int(c.get("maxSkew", 1)) - 1
                   for c, counts in state[NAME + "/score"])

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> list[int]:
        # Fewer matching pods is better: the emptiest domain scores 100.
        low, high = min(scores, default=0), max(scores, default=0)
        if high == 0:
            return [MAX_NODE_SCORE for _ in scores]
        return [MAX_NODE_SCORE * (high + low - s) // high for s in scores]


def new() -> PodTopologySpread:
    return PodTopologySpread()
