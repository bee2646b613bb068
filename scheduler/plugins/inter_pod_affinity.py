"""InterPodAffinity: required pod affinity / anti-affinity by topologyKey (including the anti-affinity of pods
already running), and preferred terms as a score.

Term namespaces: `namespaces`, else the pod's own namespace; a `namespaceSelector` of `{}` means every
namespace (other namespace selectors would need Namespace objects and are treated as the pod's namespace).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable

from aiokube.api.types import Obj
from scheduler.cache import NodeInfo, SchedulerCache
from scheduler.framework import SKIP, SUCCESS, CycleState, Status
from scheduler.plugins.selectors import label_selector_matches
from scheduler.podinfo import PodInfo

NAME = "InterPodAffinity"
AFFINITY_REASON = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY_REASON = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_REASON = "node(s) didn't satisfy existing pods anti-affinity rules"
Domain = tuple[str, str]  # (topology key, value)


def term_matches(term: Obj, owner: PodInfo, candidate: PodInfo) -> bool:
    """Does `candidate` fall under `term` written in `owner`'s spec?"""
    namespaces = term.get("namespaces") or []
    if term.get("namespaceSelector") == {}:
        pass  # every namespace
    elif namespaces:
        if candidate.namespace not in namespaces:
            return False
    elif candidate.namespace != owner.namespace:
        return False
    return label_selector_matches(term.get("labelSelector"), candidate.labels)


def _terms(pod: PodInfo, kind: str, mode: str) -> list[Obj]:
    return (pod.affinity.get(kind) or {}).get(f"{mode}DuringSchedulingIgnoredDuringExecution") or []


def _domains(node: NodeInfo, key: str) -> Domain | None:
    value = node.labels.get(key)
    return None if value is None else (key, value)


def _all_pods(nodes: Iterable[NodeInfo]) -> Iterable[tuple[NodeInfo, PodInfo]]:
    for node in nodes:
        for pod in node.pods.values():
            if not pod.is_terminating:
                yield node, pod


class InterPodAffinity:
    name = NAME

    def __init__(self, cache: SchedulerCache | None = None) -> None:
        # The cache indexes pods with required anti-affinity, so plain pods skip this plugin entirely and
        # others visit only those pods, not every pod in the cluster.
        self.cache = cache or SchedulerCache()

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]) -> Status:
        affinity = _terms(pod, "podAffinity", "required")
        anti = _terms(pod, "podAntiAffinity", "required")
        existing = self.cache.pods_with_anti_affinity
        if not affinity and not anti and not existing:
            return SKIP
        affinity_counts: list[Counter[Domain]] = [Counter() for _ in affinity]
        anti_domains: set[Domain] = set()
        existing_forbidden: set[Domain] = set()
        if affinity or anti:
            for node, other in _all_pods(nodes):
                if other.key == pod.key:
                    continue
                for i, term in enumerate(affinity):
                    if term_matches(term, pod, other) and (d := _domains(node, term["topologyKey"])):
                        affinity_counts[i][d] += 1
                for term in anti:
                    if term_matches(term, pod, other) and (d := _domains(node, term["topologyKey"])):
                        anti_domains.add(d)
        for key, other in existing.items():
            node_name = self.cache.node_of(key)
            holder = self.cache.nodes.get(node_name) if node_name else None
            if holder is None or other.is_terminating or key == pod.key:
                continue
            for term in _terms(other, "podAntiAffinity", "required"):
                if term_matches(term, other, pod) and (d := _domains(holder, term["topologyKey"])):
                    existing_forbidden.add(d)
        # The first pod of a group with self-affinity may go anywhere the topology key exists.
        self_affine = bool(affinity) and all(not c for c in affinity_counts) and all(
            term_matches(term, pod, pod) for term in affinity)
        state[NAME] = (affinity, affinity_counts, self_affine, anti, anti_domains, existing_forbidden)
        return SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        affinity, affinity_counts, self_affine, anti, anti_domains, existing_forbidden = state[NAME]
        # Kubernetes' order, which decides the reason reported: the pod's affinity, its anti-affinity, then
        # the existing pods' anti-affinity.
        for i, term in enumerate(affinity):
            domain = _domains(node, term["topologyKey"])
            if domain is None or (not affinity_counts[i][domain] and not self_affine):
                return Status.unresolvable(AFFINITY_REASON, plugin=NAME)
        for term in anti:
            if _domains(node, term["topologyKey"]) in anti_domains:
                return Status.unschedulable(ANTI_AFFINITY_REASON, plugin=NAME)
        for key, value in node.labels.items():
            if (key, value) in existing_forbidden:
                return Status.unschedulable(EXISTING_ANTI_AFFINITY_REASON, plugin=NAME)
        return SUCCESS

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]) -> Status:
        preferred = [(t, 1) for t in _terms(pod, "podAffinity", "preferred")]
        preferred += [(t, -1) for t in _terms(pod, "podAntiAffinity", "preferred")]
        if not preferred:
            return SKIP
        weights: Counter[Domain] = Counter()
        for node, other in _all_pods(nodes):
            for weighted, sign in preferred:
                term = weighted.get("podAffinityTerm") or {}
                if term_matches(term, pod, other) and (d := _domains(node, term.get("topologyKey", ""))):
                    weights[d] += sign * int(weighted.get("weight", 0))
        state[NAME + "/score"] = weights
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        weights: Counter[Domain] = state[NAME + "/score"]
        return sum(weights.get((k, v), 0) for k, v in node.labels.items())

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> list[int]:
        low, high = min(scores, default=0), max(scores, default=0)
        if high == low:
            return [0 for _ in scores]
        return [(s - low) * 100 // (high - low) for s in scores]


def new(cache: SchedulerCache | None = None) -> InterPodAffinity:
    return InterPodAffinity(cache)
