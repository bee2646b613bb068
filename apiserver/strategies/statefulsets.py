"""StatefulSets (apps/v1): defaults, validation, which spec fields may change, and the `kubectl get
statefulsets` table."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, containers_column, doc, images_column
from apiserver.strategies.kind import KindStrategy
from apiserver.strategies.podspec import default_pod_template, validate_controller_selector, validate_pod_template
from apiserver.strategies.workloads import template_containers, validate_int_or_percent

POD_MANAGEMENT_POLICIES = ("OrderedReady", "Parallel")
UPDATE_STRATEGY_TYPES = ("OnDelete", "RollingUpdate")
RETENTION_POLICIES = ("Delete", "Retain")
# The spec fields a StatefulSet update may change; everything else is fixed at creation.
MUTABLE_FIELDS = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                  "minReadySeconds")


class StatefulSetStrategy(KindStrategy):
    has_status_subresource = True

    columns = [
        Column("Ready", description="Number of the pod with ready state"),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
        containers_column(),
        images_column(),
    ]

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
        default_pod_template(spec.get("template"))

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"replicas": 0, "availableReplicas": 0}

    def validate_kind(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = fe.non_negative("spec.replicas", spec.get("replicas"))
        causes += fe.non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
        causes += fe.non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
        policy = spec.get("podManagementPolicy")
        if policy not in POD_MANAGEMENT_POLICIES:
            causes.append(fe.not_supported("spec.podManagementPolicy", policy, POD_MANAGEMENT_POLICIES) if policy
                          else fe.required("spec.podManagementPolicy", ""))
        strategy = spec.get("updateStrategy") or {}
        kind = strategy.get("type")
        if kind not in UPDATE_STRATEGY_TYPES:
            causes.append(fe.not_supported("spec.updateStrategy.type", kind, UPDATE_STRATEGY_TYPES) if kind
                          else fe.required("spec.updateStrategy.type"))
        elif kind == "OnDelete" and strategy.get("rollingUpdate") is not None:
            causes.append(fe.invalid("spec.updateStrategy.rollingUpdate", fe.GoLiteral("{...}"),
                                     "only allowed for updateStrategy 'RollingUpdate'"))
        elif kind == "RollingUpdate":
            rolling = strategy.get("rollingUpdate") or {}
            causes += fe.non_negative("spec.updateStrategy.rollingUpdate.partition", rolling.get("partition"))
            causes += validate_int_or_percent(rolling.get("maxUnavailable"),
                                              "spec.updateStrategy.rollingUpdate.maxUnavailable")
        retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        for field in ("whenDeleted", "whenScaled"):
            value = retention.get(field)
            if value is not None and value not in RETENTION_POLICIES:
                causes.append(fe.not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{field}", value,
                                               RETENTION_POLICIES))
        causes += validate_controller_selector(spec.get("selector"), "spec.selector",
                                               "empty selector is not valid for statefulset.")
        causes += validate_pod_template(spec.get("template"), "spec.template", selector=spec.get("selector"),
                                        match_selector=True, restart_policies=("Always",))
        if ((spec.get("template") or {}).get("spec") or {}).get("activeDeadlineSeconds") is not None:
            causes.append(fe.forbidden("spec.template.spec.activeDeadlineSeconds",
                                       "activeDeadlineSeconds in StatefulSet is not Supported"))
        return causes

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        fixed_new = {k: v for k, v in new_spec.items() if k not in MUTABLE_FIELDS}
        fixed_old = {k: v for k, v in old_spec.items() if k not in MUTABLE_FIELDS}
        if fixed_new != fixed_old:
            return [fe.forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                                         "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                                         "'minReadySeconds' are forbidden")]
        return []

    def cells(self, obj: Obj, now: float) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        names, images = template_containers(spec.get("template"))
        return [f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", age_cell(obj, now), names, images]
