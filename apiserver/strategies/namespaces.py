"""Namespaces: the `kubernetes` finalizer and Active phase on create, the metadata.name label, validation,
the finalize subresource rule, field selectors and the `kubectl get namespaces` table."""

from __future__ import annotations

import copy
from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import names
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, doc
from apiserver.strategies.kind import KindStrategy

NAME_LABEL = "kubernetes.io/metadata.name"
KUBERNETES_FINALIZER = "kubernetes"
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
PHASES = ("Active", "Terminating")


def validate_finalizer_name(name: str, field: str) -> list[Cause]:
    causes = [fe.invalid(field, name, msg) for msg in names.qualified_name(name)]
    if not causes and "/" not in name and name not in STANDARD_FINALIZERS:
        causes.append(fe.invalid(field, name, "name is neither a standard finalizer name nor is it fully qualified"))
    return causes


class NamespaceStrategy(KindStrategy):
    has_status_subresource = True
    tracks_generation = False

    columns = [
        Column("Status", description="The status of the namespace"),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
    ]

    def check_name(self, name: str) -> list[str]:
        return names.dns1123_label(name)

    def default(self, obj: Obj) -> None:
        meta = obj.setdefault("metadata", {})
        if meta.get("name"):
            labels = meta.get("labels") or {}
            labels[NAME_LABEL] = meta["name"]
            meta["labels"] = labels

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}
        spec = obj.setdefault("spec", {})
        finalizers = list(spec.get("finalizers") or [])
        if KUBERNETES_FINALIZER not in finalizers:
            finalizers.append(KUBERNETES_FINALIZER)
        spec["finalizers"] = finalizers

    # Kubernetes also pins spec.finalizers on a plain update (only /finalize may change them). The handlers here
    # route /finalize through prepare_for_update, so pinning them would make namespaces undeletable; the base
    # rule (status kept) applies until /finalize calls prepare_for_finalize.

    def prepare_for_finalize(self, new: Obj, old: Obj) -> None:
        """PUT …/finalize changes only spec.finalizers; everything else comes from the stored object."""
        finalizers = (new.get("spec") or {}).get("finalizers")
        new.clear()
        new.update(copy.deepcopy(old))
        new.setdefault("spec", {})["finalizers"] = finalizers or []

    def validate_kind(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for i, name in enumerate((obj.get("spec") or {}).get("finalizers") or []):
            causes += validate_finalizer_name(str(name), f"spec.finalizers[{i}]")
        phase = (obj.get("status") or {}).get("phase")
        if phase and phase not in PHASES:
            causes.append(fe.not_supported("status.phase", phase, PHASES))
        return causes

    def selectable_fields(self, obj: Obj) -> dict[str, str]:
        fields = super().selectable_fields(obj)
        fields["status.phase"] = (obj.get("status") or {}).get("phase", "")
        fields["name"] = (obj.get("metadata") or {}).get("name", "")  # the legacy alias Kubernetes keeps
        return fields

    def cells(self, obj: Obj, now: float) -> list[Any]:
        return [(obj.get("status") or {}).get("phase", ""), age_cell(obj, now)]
