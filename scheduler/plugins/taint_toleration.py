"""TaintToleration: NoSchedule/NoExecute taints the pod does not tolerate rule the node out; each untolerated
PreferNoSchedule taint lowers the node's score (fewer is better)."""

from __future__ import annotations

import numpy as np

from aiokube.api.types import Obj
from scheduler.cache import NodeInfo
from scheduler.framework import MAX_NODE_SCORE, SUCCESS, CycleState, Status
from scheduler.plugins.selectors import tolerates, untolerated_taint
from scheduler.podinfo import PodInfo

NAME = "TaintToleration"


def reason_for(taint: Obj) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"


class TaintToleration:
    name = NAME

    def filter_static(self, pod: PodInfo, node: Obj) -> Status:
        taints = (node.get("spec") or {}).get("taints") or []
        taint = untolerated_taint(taints, pod.tolerations, ("NoSchedule", "NoExecute"))
        if taint is None:
            return SUCCESS
        return Status.unresolvable(reason_for(taint), plugin=NAME)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return self.filter_static(pod, node.node or {})

    def score_static(self, pod: PodInfo, node: Obj) -> int:
        # Only tolerations that could apply to PreferNoSchedule count (Kubernetes' getAllTolerationPreferNoSchedule).
        tolerations = [t for t in pod.tolerations if t.get("effect") in (None, "", "PreferNoSchedule")]
        taints = (node.get("spec") or {}).get("taints") or []
        return sum(1 for taint in taints if taint.get("effect") == "PreferNoSchedule"
                   and not any(tolerates(t, taint) for t in tolerations))

    def normalize_batch(self, raw: np.ndarray) -> np.ndarray:
        # Reverse normalisation: the node with the most intolerable taints scores 0, none scores 100.
        highest = raw.max() if len(raw) else 0
        if highest == 0:
            return np.full(len(raw), MAX_NODE_SCORE, dtype=np.float64)
        return MAX_NODE_SCORE - np.floor(raw * MAX_NODE_SCORE / highest)


def new() -> TaintToleration:
    return TaintToleration()
