"""Request body decoding (JSON, YAML, kubectl's protobuf envelope) and JSON response encoding.

Every body is decoded exactly once per request into a plain dict; responses are encoded once with orjson.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from aiokube.api.errors import ApiError, bad_request

PROTOBUF_MAGIC = b"k8s\x00"
PROTOBUF_TYPE = "application/vnd.kubernetes.protobuf"


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj)


def media_type(content_type: str | None) -> str:
    return (content_type or "application/json").split(";", 1)[0].strip().lower()


def decode_body(body: bytes, content_type: str | None) -> Any:
    """Decode a request body by its Content-Type; malformed input is a 400, unsupported types a 415."""
    kind = media_type(content_type)
    if kind == PROTOBUF_TYPE or body.startswith(PROTOBUF_MAGIC):
        return decode_protobuf_envelope(body)
    if kind.endswith("yaml"):
        # apply-patch+yaml and application/yaml: YAML is a superset of JSON, but JSON parses much faster.
        if body.lstrip()[:1] in (b"{", b"["):
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
        try:
            return yaml.safe_load(body)
        except yaml.YAMLError as exc:
            raise bad_request(f"error converting YAML to JSON: {exc}") from None
    if kind.endswith("json") or kind in ("", "*/*", "text/plain"):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"the body of the request was in an unknown format - accepted media types "
                              f"include: application/json, application/yaml, "
                              f"application/vnd.kubernetes.protobuf ({exc})") from None
    raise ApiError(415, f'the body of the request was in an unknown format - accepted media types include: '
                        f'application/json, application/yaml, application/vnd.kubernetes.protobuf '
                        f'(got "{kind}")', "UnsupportedMediaType")


# --- protobuf ----------------------------------------------------------------------------------------------
# kubectl's imperative generators send `k8s\0` + runtime.Unknown{1: typeMeta{1: apiVersion, 2: kind},
# 2: raw, 3: contentEncoding, 4: contentType}. `raw` is the object in Kubernetes protobuf, which needs the
# generated.proto schemas of every kind; objects we can read (JSON raw) pass, the rest are refused clearly.

def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise bad_request("truncated protobuf body")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise bad_request("malformed protobuf varint")


def protobuf_fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """Top-level (field number, wire type, value) triples of a protobuf message."""
    fields: list[tuple[int, int, bytes | int]] = []
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            fields.append((number, wire, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise bad_request("truncated protobuf body")
            fields.append((number, wire, data[pos:pos + length]))
            pos += length
        elif wire == 1:
            fields.append((number, wire, data[pos:pos + 8]))
            pos += 8
        elif wire == 5:
            fields.append((number, wire, data[pos:pos + 4]))
            pos += 4
        else:
            raise bad_request(f"unsupported protobuf wire type {wire}")
    return fields


def _strings(fields: list[tuple[int, int, bytes | int]]) -> dict[int, str]:
    return {n: v.decode() for n, w, v in fields if w == 2 and isinstance(v, bytes)}


def decode_protobuf_envelope(body: bytes) -> Any:
    if not body.startswith(PROTOBUF_MAGIC):
        raise bad_request("protobuf body without the k8s\\x00 prefix")
    envelope = protobuf_fields(body[len(PROTOBUF_MAGIC):])
    type_meta: dict[int, str] = {}
    raw = b""
    for number, wire, value in envelope:
        if number == 1 and wire == 2 and isinstance(value, bytes):
            type_meta = _strings(protobuf_fields(value))
        elif number == 2 and isinstance(value, bytes):
            raw = value
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    if raw.lstrip()[:1] == b"{":
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"malformed JSON inside the protobuf envelope: {exc}") from None
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", kind)
        return obj
    from apiserver.protobuf_objects import decode_object  # the few kinds we can read from protobuf

    decoded = decode_object(api_version, kind, raw)
    if decoded is not None:
        return decoded
    raise ApiError(415, f"the body of the request was in an unknown format - this server cannot decode "
                        f"{kind or 'objects'} ({api_version}) from {PROTOBUF_TYPE}; send application/json "
                        f"(e.g. `kubectl create -f` or `kubectl apply -f`)", "UnsupportedMediaType")
