"""Secrets: type Opaque by default, stringData folded into base64 data, per-type required keys, immutability,
the `type` field selector and the `kubectl get secrets` table."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, doc
from apiserver.strategies.configdata import MAX_DATA_SIZE, validate_immutable_update, validate_keys
from apiserver.strategies.kind import KindStrategy

SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
# The keys each well-known secret type must carry.
REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


class SecretStrategy(KindStrategy):
    tracks_generation = False

    columns = [
        Column("Type", description=doc("core.v1.Secret", "type")),
        Column("Data", description=doc("core.v1.Secret", "data")),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
    ]

    def default(self, obj: Obj) -> None:
        if not obj.get("type"):
            obj["type"] = "Opaque"
        string_data = obj.pop("stringData", None)
        if string_data:
            # The v1 conversion: stringData is write-only and wins over data for the same key.
            data = obj.get("data") or {}
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data

    def validate_kind(self, obj: Obj) -> list[Cause]:
        data = obj.get("data") or {}
        causes = validate_keys(data, "data")
        size = 0
        for key, value in data.items():
            try:
                size += len(base64.b64decode(str(value), validate=True))
            except (binascii.Error, ValueError):
                causes.append(fe.invalid(f"data[{key}]", fe.OMIT, "illegal base64 data"))
        if size > MAX_DATA_SIZE:
            causes.append(fe.too_long("data", MAX_DATA_SIZE))
        kind = obj.get("type") or "Opaque"
        if kind == "kubernetes.io/service-account-token":
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if not annotations.get(SA_NAME_ANNOTATION):
                causes.append(fe.required(f"metadata.annotations[{SA_NAME_ANNOTATION}]"))
        elif kind == "kubernetes.io/basic-auth":
            if "username" not in data and "password" not in data:
                causes += [fe.required("data[username]"), fe.required("data[password]")]
        for key in REQUIRED_KEYS.get(kind, ()):
            if key not in data:
                causes.append(fe.required(f"data[{key}]"))
        return causes

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes: list[Cause] = []
        if (new.get("type") or "Opaque") != (old.get("type") or "Opaque"):
            causes.append(fe.immutable("type", new.get("type")))
        return causes + validate_immutable_update(new, old, ("data",))

    def selectable_fields(self, obj: Obj) -> dict[str, str]:
        fields = super().selectable_fields(obj)
        fields["type"] = obj.get("type", "")
        return fields

    def cells(self, obj: Obj, now: float) -> list[Any]:
        return [obj.get("type", ""), len(obj.get("data") or {}), age_cell(obj, now)]
