"""ServiceAccounts: validation and the `kubectl get serviceaccounts` table (SECRETS, AGE)."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies.columns import Column, age_cell, doc
from apiserver.strategies.kind import KindStrategy


class ServiceAccountStrategy(KindStrategy):
    tracks_generation = False

    columns = [
        Column("Secrets", description=doc("core.v1.ServiceAccount", "secrets")),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
    ]

    def cells(self, obj: Obj, now: float) -> list[Any]:
        return [len(obj.get("secrets") or []), age_cell(obj, now)]
