"""PriorityClasses (scheduling.k8s.io/v1): defaults, the reserved `system-` names and value range, immutable
value/preemptionPolicy, and the `kubectl get priorityclasses` table."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, doc
from apiserver.strategies.kind import KindStrategy

# User-defined priorities stay below the system-critical range (Kubernetes' HighestUserDefinablePriority).
HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
SYSTEM_CLASSES = {"system-cluster-critical": 2_000_000_000, "system-node-critical": 2_000_001_000}
PREEMPTION_POLICIES = ("Never", "PreemptLowerPriority")


class PriorityClassStrategy(KindStrategy):
    tracks_generation = False

    columns = [
        Column("Value", type="integer", description=doc("scheduling.v1.PriorityClass", "value")),
        Column("Global-Default", type="boolean", description=doc("scheduling.v1.PriorityClass", "globalDefault")),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
        Column("PreemptionPolicy", description=doc("scheduling.v1.PriorityClass", "preemptionPolicy")),
    ]

    def default(self, obj: Obj) -> None:
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")

    def validate_kind(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        name = (obj.get("metadata") or {}).get("name") or ""
        value = obj.get("value")
        if name in SYSTEM_CLASSES:
            if value != SYSTEM_CLASSES[name]:
                causes.append(fe.forbidden("metadata.name", f"{name!r} is a system priority class and must have "
                                                            f"value {SYSTEM_CLASSES[name]}"))
        elif name.startswith("system-"):
            causes.append(fe.forbidden("metadata.name", "priority class names with 'system-' prefix are reserved"))
        elif isinstance(value, int) and value > HIGHEST_USER_DEFINABLE_PRIORITY:
            causes.append(fe.forbidden("value", f"maximum allowed value of a user defined priority is "
                                                f"{HIGHEST_USER_DEFINABLE_PRIORITY}"))
        policy = obj.get("preemptionPolicy")
        if policy and policy not in PREEMPTION_POLICIES:
            causes.append(fe.not_supported("preemptionPolicy", policy, PREEMPTION_POLICIES))
        return causes

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes: list[Cause] = []
        if new.get("value") != old.get("value"):
            causes.append(fe.forbidden("value", "may not be changed in an update."))
        if new.get("preemptionPolicy") != old.get("preemptionPolicy"):
            causes.append(fe.immutable("preemptionPolicy", new.get("preemptionPolicy")))
        return causes

    def cells(self, obj: Obj, now: float) -> list[Any]:
        return [obj.get("value", 0), bool(obj.get("globalDefault", False)), age_cell(obj, now),
                obj.get("preemptionPolicy", "")]
