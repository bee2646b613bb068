"""ConfigMaps: key formats, the size limit, immutability and the `kubectl get configmaps` table."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, doc
from apiserver.strategies.configdata import MAX_DATA_SIZE, validate_immutable_update, validate_keys
from apiserver.strategies.kind import KindStrategy


class ConfigMapStrategy(KindStrategy):
    tracks_generation = False

    columns = [
        Column("Data", description=doc("core.v1.ConfigMap", "data")),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
    ]

    def validate_kind(self, obj: Obj) -> list[Cause]:
        data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
        causes = validate_keys(data, "data") + validate_keys(binary, "binaryData")
        for key in binary:
            if key in data:
                causes.append(fe.invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        size = sum(len(str(k)) + len(str(v)) for k, v in data.items())
        size += sum(len(str(k)) + len(str(v)) * 3 // 4 for k, v in binary.items())
        if size > MAX_DATA_SIZE:
            causes.append(fe.too_long("", MAX_DATA_SIZE))
        return causes

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_immutable_update(new, old, ("data", "binaryData"))

    def cells(self, obj: Obj, now: float) -> list[Any]:
        return [len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), age_cell(obj, now)]
