"""NodeAffinity: spec.nodeSelector and required node affinity filter nodes (terms are ORed, expressions
within a term ANDed); preferred terms add their weight to the score."""

from __future__ import annotations

import numpy as np

from aiokube.api.types import Obj
from scheduler.cache import NodeInfo
from scheduler.framework import MAX_NODE_SCORE, SUCCESS, CycleState, Status
from scheduler.plugins.selectors import node_selector_term_matches
from scheduler.podinfo import PodInfo

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"


def required_matches(pod: PodInfo, node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (pod.spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (pod.affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(node_selector_term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])


class NodeAffinity:
    name = NAME

    def filter_static(self, pod: PodInfo, node: Obj) -> Status:
        return SUCCESS if required_matches(pod, node) else Status.unresolvable(REASON, plugin=NAME)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return self.filter_static(pod, node.node or {"metadata": {"name": node.name}})

    def score_static(self, pod: PodInfo, node: Obj) -> int:
        preferred = (pod.affinity.get("nodeAffinity") or {}).get(
            "preferredDuringSchedulingIgnoredDuringExecution") or []
        return sum(int(term.get("weight", 0)) for term in preferred
                   if node_selector_term_matches(term.get("preference") or {}, node))

    def normalize_batch(self, raw: np.ndarray) -> np.ndarray:
        highest = raw.max() if len(raw) else 0
        if highest <= 0:
            return np.zeros(len(raw), dtype=np.float64)
        return np.floor(raw * MAX_NODE_SCORE / highest)


def new() -> NodeAffinity:
    return NodeAffinity()
