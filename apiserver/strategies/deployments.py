"""Deployments (apps/v1): defaults, validation, the immutable selector and the `kubectl get deployments` table."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import meta
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, containers_column, doc, images_column
from apiserver.strategies.kind import KindStrategy
from apiserver.strategies.podspec import default_pod_template, validate_controller_selector, validate_pod_template
from apiserver.strategies.workloads import (
    template_containers,
    validate_rolling_update,
    validate_selector_unchanged,
)

STRATEGY_TYPES = ("Recreate", "RollingUpdate")


def validate_replica_set_template(spec: Obj, path: str, owner: str) -> list[Cause]:
    """ValidatePodTemplateSpecForReplicaSet: shared by Deployment and ReplicaSet."""
    causes = validate_pod_template(spec.get("template"), f"{path}.template", selector=spec.get("selector"),
                                   match_selector=True, restart_policies=("Always",))
    template_spec = (spec.get("template") or {}).get("spec") or {}
    if template_spec.get("activeDeadlineSeconds") is not None:
        causes.append(fe.forbidden(f"{path}.template.spec.activeDeadlineSeconds",
                                   f"activeDeadlineSeconds in {owner} is not Supported"))
    return causes


class DeploymentStrategy(KindStrategy):
    has_status_subresource = True

    columns = [
        Column("Ready", description="Number of the pod with ready state"),
        Column("Up-to-date", description=doc("apps.v1.DeploymentStatus", "updatedReplicas")),
        Column("Available", description=doc("apps.v1.DeploymentStatus", "availableReplicas")),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
        containers_column(),
        images_column(),
        Column("Selector", priority=1, description=doc("apps.v1.DeploymentSpec", "selector")),
    ]

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        default_pod_template(spec.get("template"))

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def validate_kind(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = fe.non_negative("spec.replicas", spec.get("replicas"))
        causes += validate_controller_selector(spec.get("selector"), "spec.selector",
                                               "empty selector is invalid for deployment")
        causes += validate_replica_set_template(spec, "spec", "ReplicaSet")
        strategy = spec.get("strategy") or {}
        kind = strategy.get("type")
        if kind not in STRATEGY_TYPES:
            causes.append(fe.not_supported("spec.strategy.type", kind, STRATEGY_TYPES) if kind
                          else fe.required("spec.strategy.type"))
        elif kind == "Recreate" and strategy.get("rollingUpdate") is not None:
            causes.append(fe.forbidden("spec.strategy.rollingUpdate",
                                       "may not be specified when strategy `type` is 'Recreate'"))
        elif kind == "RollingUpdate":
            causes += validate_rolling_update(strategy.get("rollingUpdate") or {}, "spec.strategy.rollingUpdate",
                                              surge_default=None)
        for field in ("minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
            causes += fe.non_negative(f"spec.{field}", spec.get(field))
        deadline, min_ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
        if isinstance(deadline, int) and deadline >= 0 and deadline <= min_ready:
            causes.append(fe.invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
        return causes

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_selector_unchanged(new, old)

    def cells(self, obj: Obj, now: float) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        names, images = template_containers(spec.get("template"))
        return [f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", status.get("updatedReplicas", 0),
                status.get("availableReplicas", 0), age_cell(obj, now), names, images,
                meta.selector_string(spec.get("selector"))]
