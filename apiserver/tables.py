"""Table responses (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) built from each Strategy's
table_columns/table_row, for get, list and watch events."""

from __future__ import annotations

import time

from aiokube.api.errors import ApiError, bad_request
from aiokube.api.types import Obj
from apiserver.registry import ResourceHandle

INCLUDE_OBJECT = ("None", "Metadata", "Object")


def wants_table(accept: str | None) -> bool:
    """True when the client's first acceptable representation is a meta.k8s.io Table; other `as=` forms
    (PartialObjectMetadata) are not served, so asking only for them is a 406."""
    if not accept or "as=" not in accept:
        return False
    for clause in accept.split(","):
        params = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in clause.split(";")[1:])}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return True
        if "as" not in params:
            return False
    raise ApiError(406, "only the following media types are accepted: application/json, application/yaml, "
                        "application/json;as=Table;v=v1;g=meta.k8s.io", "NotAcceptable")


def include_object(value: str | None) -> str:
    mode = value or "Metadata"
    if mode not in INCLUDE_OBJECT:
        raise bad_request(f'includeObject: Unsupported value: "{mode}": supported values: "Metadata", "None", '
                          f'"Object"')
    return mode


def _row(handle: ResourceHandle, obj: Obj, mode: str, now: float) -> Obj:
    row: Obj = {"cells": handle.strategy.table_row(obj, now)}
    if mode == "Object":
        row["object"] = obj
    elif mode == "Metadata":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj.get("metadata", {})}
    return row


def to_table(handle: ResourceHandle, objs: list[Obj], *, mode: str = "Metadata", list_meta: Obj | None = None,
             with_columns: bool = True) -> Obj:
    now = time.time()
    table: Obj = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(list_meta or {}),
        "columnDefinitions": handle.strategy.table_columns() if with_columns else [],
        "rows": [_row(handle, obj, mode, now) for obj in objs],
    }
    return table


def object_table(handle: ResourceHandle, obj: Obj, mode: str) -> Obj:
    """A single object as a one-row Table (GET of an object, and each watch event)."""
    rv = obj.get("metadata", {}).get("resourceVersion")
    return to_table(handle, [obj], mode=mode, list_meta={"resourceVersion": rv} if rv else None)
