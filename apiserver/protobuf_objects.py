"""Decode the kinds kubectl's imperative generators send as Kubernetes protobuf.

`kubectl create namespace|configmap|secret|deployment|job|cronjob` send `runtime.Unknown.raw` in the
Kubernetes protobuf encoding, which needs each type's generated.proto. This module describes just the fields
those generators fill (field numbers from k8s.io/api and apimachinery's generated.proto). A field it does not
know makes the whole decode fail (None → the codec answers 415) rather than silently dropping data.
"""

from __future__ import annotations

import base64
from typing import Any

from aiokube.api.types import Obj
from apiserver.codec import protobuf_fields

# A message schema: field number -> (json name, kind, sub-schema). Kinds: str, int, int* (a pointer field: 0 is
# a value), bool, map (map<string,string>), bmap (map<string,bytes> → base64), msg, str[], msg[], skip-empty.
# Go's encoder writes every non-pointer field, so empty strings, zeros and empty messages of fields we do not
# describe are skipped like absent ones (they are also what JSON's omitempty leaves out).
Schema = dict[int, tuple[str, str, Any]]

OBJECT_META: Schema = {1: ("name", "str", None), 2: ("generateName", "str", None),
                       3: ("namespace", "str", None), 8: ("creationTimestamp", "skip-empty", None),
                       11: ("labels", "map", None), 12: ("annotations", "map", None),
                       14: ("finalizers", "str[]", None)}
LABEL_SELECTOR: Schema = {1: ("matchLabels", "map", None),
                          2: ("matchExpressions", "msg[]", {1: ("key", "str", None), 2: ("operator", "str", None),
                                                           3: ("values", "str[]", None)})}
CONTAINER: Schema = {
    1: ("name", "str", None), 2: ("image", "str", None), 3: ("command", "str[]", None), 4: ("args", "str[]", None),
    5: ("workingDir", "str", None),
    6: ("ports", "msg[]", {1: ("name", "str", None), 2: ("hostPort", "int", None),
                           3: ("containerPort", "int", None), 4: ("protocol", "str", None)}),
    7: ("env", "msg[]", {1: ("name", "str", None), 2: ("value", "str", None)}),
    8: ("resources", "msg", {}), 14: ("imagePullPolicy", "str", None),
}
POD_SPEC: Schema = {2: ("containers", "msg[]", CONTAINER), 3: ("restartPolicy", "str", None)}
POD_TEMPLATE: Schema = {1: ("metadata", "msg", OBJECT_META), 2: ("spec", "msg", POD_SPEC)}
DEPLOYMENT_SPEC: Schema = {1: ("replicas", "int*", None), 2: ("selector", "msg", LABEL_SELECTOR),
                           3: ("template", "msg", POD_TEMPLATE),
                           4: ("strategy", "msg", {1: ("type", "str", None)})}
JOB_SPEC: Schema = {1: ("parallelism", "int*", None), 2: ("completions", "int*", None),
                    3: ("activeDeadlineSeconds", "int", None), 4: ("selector", "msg", LABEL_SELECTOR),
                    6: ("template", "msg", POD_TEMPLATE), 7: ("backoffLimit", "int*", None)}
CRONJOB_SPEC: Schema = {1: ("schedule", "str", None), 3: ("concurrencyPolicy", "str", None),
                        4: ("suspend", "bool", None),
                        5: ("jobTemplate", "msg", {1: ("metadata", "msg", OBJECT_META),
                                                   2: ("spec", "msg", JOB_SPEC)})}

TOP_LEVEL: dict[tuple[str, str], Schema] = {
    ("v1", "Namespace"): {1: ("metadata", "msg", OBJECT_META),
                          2: ("spec", "msg", {1: ("finalizers", "str[]", None)}),
                          3: ("status", "skip-empty", None)},
    ("v1", "ConfigMap"): {1: ("metadata", "msg", OBJECT_META), 2: ("data", "map", None),
                          3: ("binaryData", "bmap", None), 4: ("immutable", "bool", None)},
    ("v1", "Secret"): {1: ("metadata", "msg", OBJECT_META), 2: ("data", "bmap", None), 3: ("type", "str", None),
                       4: ("stringData", "map", None), 5: ("immutable", "bool", None)},
    ("apps/v1", "Deployment"): {1: ("metadata", "msg", OBJECT_META), 2: ("spec", "msg", DEPLOYMENT_SPEC),
                                3: ("status", "skip-empty", None)},
    ("batch/v1", "Job"): {1: ("metadata", "msg", OBJECT_META), 2: ("spec", "msg", JOB_SPEC),
                          3: ("status", "skip-empty", None)},
    ("batch/v1", "CronJob"): {1: ("metadata", "msg", OBJECT_META), 2: ("spec", "msg", CRONJOB_SPEC),
                              3: ("status", "skip-empty", None)},
}


class _Unknown(Exception):
    """A field this module has no description for."""


def _map_entry(entry: bytes) -> tuple[str, bytes]:
    key, val = "", b""
    for number, _, value in protobuf_fields(entry):
        if number == 1 and isinstance(value, bytes):
            key = value.decode()
        elif number == 2 and isinstance(value, bytes):
            val = value
    return key, val


def _all_zero(value: bytes | int) -> bool:
    """A Go zero value (e.g. an empty status, a zero Time), possibly with every field written out."""
    if isinstance(value, int) or not value:
        return not value
    try:
        return all(_all_zero(v) for _, _, v in protobuf_fields(value))
    except Exception:  # not a message: non-empty bytes
        return False


def _message(data: bytes, schema: Schema) -> Obj:
    out: Obj = {}
    for number, _, value in protobuf_fields(data):
        kind = schema[number][1] if number in schema else ""
        if not value and kind not in ("int*", "bool", "msg", "msg[]"):
            continue  # Go wrote a zero value: the same as absent
        if number not in schema:
            raise _Unknown(number)
        name, kind, sub = schema[number]
        if kind == "skip-empty":
            if not _all_zero(value):
                raise _Unknown(number)
        elif kind == "str" and isinstance(value, bytes):
            out[name] = value.decode()
        elif kind in ("int", "int*") and isinstance(value, int):
            out[name] = value - (1 << 64) if value >= 1 << 63 else value
        elif kind == "bool" and isinstance(value, int):
            out[name] = bool(value)
        elif kind in ("map", "bmap") and isinstance(value, bytes):
            key, raw = _map_entry(value)
            out.setdefault(name, {})[key] = raw.decode() if kind == "map" else base64.b64encode(raw).decode()
        elif kind == "msg" and isinstance(value, bytes):
            out[name] = _message(value, sub)
        elif kind == "str[]" and isinstance(value, bytes):
            out.setdefault(name, []).append(value.decode())
        elif kind == "msg[]" and isinstance(value, bytes):
            out.setdefault(name, []).append(_message(value, sub))
        else:
            raise _Unknown(number)
    return out


def decode_object(api_version: str, kind: str, raw: bytes) -> Obj | None:
    schema = TOP_LEVEL.get((api_version, kind))
    if schema is None:
        return None
    try:
        body = _message(raw, schema)
    except _Unknown:
        return None
    return {"apiVersion": api_version, "kind": kind, **body}
