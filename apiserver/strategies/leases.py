"""Leases (coordination.k8s.io/v1): validation and the `kubectl get leases` table (HOLDER, AGE)."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, doc
from apiserver.strategies.kind import KindStrategy

STRATEGIES = ("OldestEmulationVersion",)


class LeaseStrategy(KindStrategy):
    tracks_generation = False

    columns = [
        Column("Holder", description=doc("coordination.v1.LeaseSpec", "holderIdentity")),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
    ]

    def validate_kind(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and duration <= 0:
            causes.append(fe.invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
        transitions = spec.get("leaseTransitions")
        if transitions is not None and transitions < 0:
            causes.append(fe.invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
        strategy = spec.get("strategy")
        if strategy and strategy not in STRATEGIES:
            causes.append(fe.not_supported("spec.strategy", strategy, STRATEGIES))
        return causes

    def cells(self, obj: Obj, now: float) -> list[Any]:
        return [(obj.get("spec") or {}).get("holderIdentity") or "", age_cell(obj, now)]
