"""ReplicaSets (apps/v1): defaults, validation, the immutable selector, `status.replicas` field selector and
the `kubectl get replicasets` table."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import meta
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, containers_column, doc, images_column
from apiserver.strategies.deployments import validate_replica_set_template
from apiserver.strategies.kind import KindStrategy
from apiserver.strategies.podspec import default_pod_template, validate_controller_selector
from apiserver.strategies.workloads import template_containers, validate_selector_unchanged


class ReplicaSetStrategy(KindStrategy):
    has_status_subresource = True

    columns = [
        Column("Desired", type="integer", description=doc("apps.v1.ReplicaSetSpec", "replicas")),
        Column("Current", type="integer", description=doc("apps.v1.ReplicaSetStatus", "replicas")),
        Column("Ready", type="integer", description=doc("apps.v1.ReplicaSetStatus", "readyReplicas")),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
        containers_column(),
        images_column(),
        Column("Selector", priority=1, description=doc("apps.v1.ReplicaSetSpec", "selector")),
    ]

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        default_pod_template(spec.get("template"))

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"replicas": 0}

    def validate_kind(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = fe.non_negative("spec.replicas", spec.get("replicas"))
        causes += fe.non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
        causes += validate_controller_selector(spec.get("selector"), "spec.selector",
                                               "empty selector is invalid for deployment")
        causes += validate_replica_set_template(spec, "spec", "ReplicaSet")
        return causes

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_selector_unchanged(new, old)

    def selectable_fields(self, obj: Obj) -> dict[str, str]:
        fields = super().selectable_fields(obj)
        fields["status.replicas"] = str((obj.get("status") or {}).get("replicas", 0))
        return fields

    def cells(self, obj: Obj, now: float) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        names, images = template_containers(spec.get("template"))
        return [spec.get("replicas", 0), status.get("replicas", 0), status.get("readyReplicas", 0),
                age_cell(obj, now), names, images, meta.format_label_selector(spec.get("selector"))]
