"""Decode the few kinds kubectl's imperative generators send as Kubernetes protobuf.

Only what `kubectl create namespace|configmap|secret` produce is understood (ObjectMeta name/generateName/
namespace/labels/annotations, ConfigMap data/binaryData, Secret data/type/stringData). Field numbers are
those of k8s.io/api's generated.proto. Anything else returns None and the codec answers 415.
"""

from __future__ import annotations

import base64

from aiokube.api.types import Obj
from apiserver.codec import protobuf_fields


def _text(value: bytes | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _map_entry(entry: bytes) -> tuple[str, bytes]:
    key, val = "", b""
    for number, _, value in protobuf_fields(entry):
        if number == 1 and isinstance(value, bytes):
            key = value.decode()
        elif number == 2 and isinstance(value, bytes):
            val = value
    return key, val


def _object_meta(data: bytes) -> Obj:
    meta: Obj = {}
    for number, _, value in protobuf_fields(data):
        if number == 1:
            meta["name"] = _text(value)
        elif number == 2:
            meta["generateName"] = _text(value)
        elif number == 3:
            meta["namespace"] = _text(value)
        elif number in (11, 12) and isinstance(value, bytes):
            key, val = _map_entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = val.decode()
    return meta


def decode_object(api_version: str, kind: str, raw: bytes) -> Obj | None:
    if api_version != "v1" or kind not in ("Namespace", "ConfigMap", "Secret"):
        return None
    obj: Obj = {"apiVersion": api_version, "kind": kind}
    for number, _, value in protobuf_fields(raw):
        if not isinstance(value, bytes):
            if kind != "Namespace" and number in (4, 5):
                obj["immutable"] = bool(value)
            continue
        if number == 1:
            obj["metadata"] = _object_meta(value)
        elif kind == "ConfigMap" and number == 2:
            key, val = _map_entry(value)
            obj.setdefault("data", {})[key] = val.decode()
        elif kind == "ConfigMap" and number == 3:
            key, val = _map_entry(value)
            obj.setdefault("binaryData", {})[key] = base64.b64encode(val).decode()
        elif kind == "Secret" and number == 2:
            key, val = _map_entry(value)
            obj.setdefault("data", {})[key] = base64.b64encode(val).decode()
        elif kind == "Secret" and number == 3:
            obj["type"] = value.decode()
        elif kind == "Secret" and number == 4:
            key, val = _map_entry(value)
            obj.setdefault("stringData", {})[key] = val.decode()
    return obj
