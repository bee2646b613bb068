"""DaemonSets (apps/v1): defaults, validation, the immutable selector and the `kubectl get daemonsets` table."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import meta
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, containers_column, doc, images_column
from apiserver.strategies.kind import KindStrategy
from apiserver.strategies.podspec import default_pod_template, validate_controller_selector, validate_pod_template
from apiserver.strategies.workloads import template_containers, validate_rolling_update, validate_selector_unchanged

UPDATE_STRATEGY_TYPES = ("OnDelete", "RollingUpdate")


class DaemonSetStrategy(KindStrategy):
    has_status_subresource = True

    columns = [
        Column("Desired", type="integer", description=doc("apps.v1.DaemonSetStatus", "desiredNumberScheduled")),
        Column("Current", type="integer", description=doc("apps.v1.DaemonSetStatus", "currentNumberScheduled")),
        Column("Ready", type="integer", description=doc("apps.v1.DaemonSetStatus", "numberReady")),
        Column("Up-to-date", type="integer", description=doc("apps.v1.DaemonSetStatus", "updatedNumberScheduled")),
        Column("Available", type="integer", description=doc("apps.v1.DaemonSetStatus", "numberAvailable")),
        Column("Node Selector", description=doc("core.v1.PodSpec", "nodeSelector")),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
        containers_column(),
        images_column(),
        Column("Selector", priority=1, description=doc("apps.v1.DaemonSetSpec", "selector")),
    ]

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        default_pod_template(spec.get("template"))

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0,
                         "numberReady": 0}

    def validate_kind(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = validate_controller_selector(spec.get("selector"), "spec.selector",
                                              "empty selector is not valid for daemonset.")
        causes += validate_pod_template(spec.get("template"), "spec.template", selector=spec.get("selector"),
                                        match_selector=True, restart_policies=("Always",))
        template_spec = (spec.get("template") or {}).get("spec") or {}
        if template_spec.get("activeDeadlineSeconds") is not None:
            causes.append(fe.invalid("spec.template.spec.activeDeadlineSeconds",
                                     template_spec["activeDeadlineSeconds"], "activeDeadlineSeconds must be nil for "
                                                                              "daemonset"))
        strategy = spec.get("updateStrategy") or {}
        kind = strategy.get("type")
        if kind not in UPDATE_STRATEGY_TYPES:
            causes.append(fe.not_supported("spec.updateStrategy.type", kind, UPDATE_STRATEGY_TYPES) if kind
                          else fe.required("spec.updateStrategy.type"))
        elif kind == "RollingUpdate":
            causes += validate_rolling_update(strategy.get("rollingUpdate") or {},
                                              "spec.updateStrategy.rollingUpdate", surge_default=0)
        for field in ("minReadySeconds", "revisionHistoryLimit"):
            causes += fe.non_negative(f"spec.{field}", spec.get(field))
        return causes

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_selector_unchanged(new, old)

    def cells(self, obj: Obj, now: float) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        template = spec.get("template") or {}
        names, images = template_containers(template)
        return [status.get("desiredNumberScheduled", 0), status.get("currentNumberScheduled", 0),
                status.get("numberReady", 0), status.get("updatedNumberScheduled", 0),
                status.get("numberAvailable", 0), meta.format_labels((template.get("spec") or {}).get("nodeSelector")),
                age_cell(obj, now), names, images, meta.format_label_selector(spec.get("selector"))]
