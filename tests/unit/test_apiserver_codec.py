"""Request decoding (JSON, YAML, kubectl's protobuf envelope) and small pure helpers of the HTTP layer."""

from __future__ import annotations

import pytest
from starlette.responses import Response

from aiokube.api.errors import ApiError
from apiserver.codec import MAX_NESTING_DEPTH, decode_body, decode_with_duplicates, duplicate_fields
from apiserver.handlers.common import JsonResponse, go_bool, json_response
from apiserver.handlers.read import decode_continue, encode_continue
from apiserver.handlers.subresources import selector_string
from apiserver.tables import wants_table


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes | int) -> bytes:
    """One protobuf field: a varint for ints, length-delimited for bytes."""
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint((number << 3) | 2) + varint(len(payload)) + payload


def envelope(api_version: bytes, kind: bytes, raw: bytes) -> bytes:
    return b"k8s\x00" + field(1, field(1, api_version) + field(2, kind)) + field(2, raw)


def test_json_and_yaml_bodies() -> None:
    assert decode_body(b'{"a": 1}', "application/json; charset=utf-8") == {"a": 1}
    assert decode_body(b"a: 1\nb: [x]\n", "application/yaml") == {"a": 1, "b": ["x"]}
    assert decode_body(b'{"a": 1}', "application/apply-patch+yaml") == {"a": 1}
    for body, content_type in ((b"{", "application/json"), (b"a: [", "application/yaml")):
        with pytest.raises(ApiError) as err:
            decode_body(body, content_type)
        assert err.value.code == 400
    with pytest.raises(ApiError) as err:
        decode_body(b"x", "application/cbor")
    assert err.value.code == 415


@pytest.mark.parametrize("body", [b"a: \x00\n", b"a: \x07b\n"])
def test_unprintable_yaml_is_a_400(body: bytes) -> None:
    for content_type in ("application/yaml", "application/apply-patch+yaml"):
        with pytest.raises(ApiError) as err:
            decode_body(body, content_type)
        assert err.value.code == 400
    assert duplicate_fields(body, "application/yaml") == []  # not an exception: decode_body reports the 400


def test_protobuf_deployment_as_go_writes_it() -> None:
    # Go's encoder writes zero values of non-pointer fields (empty strings, 0, empty messages): they vanish.
    labels = field(11, field(1, b"app") + field(2, b"web"))
    meta = field(1, b"web") + field(2, b"") + field(7, 0) + field(8, b"") + labels
    container = field(1, b"nginx") + field(2, b"nginx:1.27") + field(8, b"") + field(16, 0)
    template = field(1, field(11, field(1, b"app") + field(2, b"web"))) + field(2, field(2, container))
    spec = field(1, 0) + field(2, field(1, field(1, b"app") + field(2, b"web"))) + field(3, template) + field(4, b"")
    status = field(1, 0) + field(2, 0)
    obj = decode_body(envelope(b"apps/v1", b"Deployment", field(1, meta) + field(2, spec) + field(3, status)),
                      "application/vnd.kubernetes.protobuf")
    assert obj == {"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "labels": {"app": "web"}},
                   "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                                                                  "resources": {}}]}},
                            "strategy": {}}}


def test_protobuf_secret_data_is_base64_and_unknown_kinds_are_415() -> None:
    raw = field(1, field(1, b"s")) + field(2, field(1, b"k") + field(2, b"\x00\x01")) + field(3, b"Opaque")
    assert decode_body(envelope(b"v1", b"Secret", raw), "application/vnd.kubernetes.protobuf") == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "AAE="}, "type": "Opaque"}
    with pytest.raises(ApiError) as err:
        decode_body(envelope(b"v1", b"Pod", field(1, field(1, b"p"))), "application/vnd.kubernetes.protobuf")
    assert err.value.code == 415
    with pytest.raises(ApiError) as err:  # a field we do not describe is refused, never dropped
        decode_body(envelope(b"v1", b"ConfigMap", field(1, field(1, b"c")) + field(9, b"??")),
                    "application/vnd.kubernetes.protobuf")
    assert err.value.code == 415
    assert decode_body(envelope(b"v1", b"ConfigMap", b'{"metadata": {"name": "j"}}'), None)["kind"] == "ConfigMap"


def test_go_booleans() -> None:
    assert all(go_bool(v) for v in ("1", "t", "T", "true", "True", "TRUE"))
    assert not any(go_bool(v) for v in ("0", "f", "false", "False", ""))
    with pytest.raises(ApiError):
        go_bool("yes")


def test_continue_tokens_round_trip_and_stay_inside_the_collection() -> None:
    assert decode_continue(encode_continue(42, "default/web")) == (42, "default/web")
    with pytest.raises(ApiError):
        decode_continue(encode_continue(42, "../other/x"))


def test_table_negotiation() -> None:
    kubectl = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
               "application/json")
    assert wants_table(kubectl)
    assert not wants_table("application/json")
    assert not wants_table(None)
    with pytest.raises(ApiError) as err:
        wants_table("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io")
    assert err.value.code == 406


def test_scale_selector_string() -> None:
    selector = {"matchLabels": {"b": "2", "a": "1"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                                     {"key": "x", "operator": "Exists"}]}
    assert selector_string(selector) == "a=1,b=2,tier in (be,fe),x"


def test_duplicate_keys_are_found_in_compact_and_spaced_json() -> None:
    # Compact bodies that orjson re-encodes identically skip the full scan; the rest take it.
    assert duplicate_fields(b'{"metadata":{"name":"a"},"data":{"v":"x"}}', "application/json") == []
    assert duplicate_fields(b'{"a": 1, "b": {"c": 2}}\n', "application/json") == []
    assert duplicate_fields(b'{"metadata":{"name":"a","name":"b"}}', "application/json") == [
        'duplicate field "metadata.name"']
    assert duplicate_fields(b'{"spec":{"replicas":1},"spec":{"replicas":2}}', "application/json") == [
        'duplicate field "spec"']
    assert duplicate_fields(b'{"a": [{"k": 1, "k": 1}]}', "application/json") == ['duplicate field "a[0].k"']
    assert duplicate_fields(b'{"a":"\\u00e9","a":"\\u00e9"}', "application/json") == ['duplicate field "a"']
    assert duplicate_fields(b'{"a":NaN}', "application/json") == []  # unparseable by orjson: the full scan


def test_nesting_depth_is_limited_whatever_the_bracket_count() -> None:
    limit = MAX_NESTING_DEPTH
    assert decode_body(b"[" * limit + b"]" * limit, "application/json") is not None
    with pytest.raises(ApiError) as err:
        decode_body(b"[" * (limit + 1) + b"]" * (limit + 1), "application/json")
    assert err.value.code == 400
    # Many brackets but shallow (the count alone would not prove it): the walk decides.
    assert len(decode_body(b"[" + b",".join([b"[]"] * (2 * limit)) + b"]", "application/json")) == 2 * limit
    # Brackets inside strings count but never make a shallow body fail.
    assert decode_body(b'{"s": "' + b"[" * (2 * limit) + b'"}', "application/json") == {"s": "[" * (2 * limit)}


@pytest.mark.parametrize(("body", "content_type"), [
    (b'{"metadata":{"name":"a"},"data":{"v":"x"}}', "application/json"),
    (b'{"metadata": {"name": "a", "name": "b"}}\n', "application/json; charset=utf-8"),
    (b'{"a": [{"k": 1, "k": 1}]}', None),
    (b'{"a":"\\u00e9","a":"\\u00e9"}', "*/*"),
    (b"[" * MAX_NESTING_DEPTH + b"]" * MAX_NESTING_DEPTH, "application/merge-patch+json"),
])
def test_decoding_with_duplicates_matches_the_two_steps(body: bytes, content_type: str | None) -> None:
    """One parse for both answers gives what decode_body and duplicate_fields give apart."""
    assert decode_with_duplicates(body, content_type) == (decode_body(body, content_type),
                                                          duplicate_fields(body, content_type))


@pytest.mark.parametrize(("body", "content_type"), [
    (b"a: 1\na: 2\n", "application/yaml"),
    (b'{"a": 1, "a": 2}', "application/apply-patch+yaml"),
    (envelope(b"v1", b"ConfigMap", b'{"metadata": {"name": "j"}}'), "application/vnd.kubernetes.protobuf"),
    (b'{"a": ', "application/json"),
    (b'{"a":NaN,"a":1}', "application/json"),
    (b"[" * (MAX_NESTING_DEPTH + 1) + b"]" * (MAX_NESTING_DEPTH + 1), "application/json"),
    (b'{"a":1,"a":2}', "application/xml"),
])
def test_bodies_other_than_decodable_json_are_left_to_the_two_steps(body: bytes, content_type: str) -> None:
    """None: the caller finds the duplicates and decodes apart, each with its own errors in their order."""
    assert decode_with_duplicates(body, content_type) is None


def test_json_responses_carry_their_length_and_type() -> None:
    created = json_response({"kind": "ConfigMap"}, 201, ["unknown field \"x\""])
    assert (created.status_code, created.body) == (201, b'{"kind":"ConfigMap"}')
    assert created.raw_headers == [(b"content-length", b"20"), (b"content-type", b"application/json"),
                                   (b"warning", b'299 - "unknown field \\"x\\""')]
    assert created.headers["content-type"] == "application/json"


@pytest.mark.parametrize("status", [100, 200, 201, 202, 204, 304, 400, 404, 409, 410, 413, 415, 422, 500, 503])
def test_json_responses_match_starlettes_own(status: int) -> None:
    body = b'{"kind":"Status"}'
    ours, theirs = JsonResponse(body, status), Response(body, status_code=status, media_type="application/json")
    assert (ours.status_code, ours.body, ours.raw_headers) == (theirs.status_code, theirs.body, theirs.raw_headers)
