"""Request body decoding (JSON, YAML, kubectl's protobuf envelope) and JSON response encoding.

Every body is decoded exactly once per request into a plain dict; responses are encoded once with orjson.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from aiokube.api.errors import ApiError, bad_request

PROTOBUF_MAGIC = b"k8s\x00"
PROTOBUF_TYPE = "application/vnd.kubernetes.protobuf"

MAX_NESTING_DEPTH = 100
"""Deepest nesting a body may have: real objects stay far below; deeper input would exhaust the recursion of
the (recursive) validators, copies and patch engines."""
MAX_ALIAS_EXPANSION = 1_000_000
"""YAML nodes an aliased document may expand to (the billion-laughs guard; go-yaml has a similar budget)."""


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
                return _check_json_depth(body, orjson.loads(body))
            except orjson.JSONDecodeError:
                pass
        return _check_depth(load_yaml(body)[0])
    if kind.endswith("json") or kind in ("", "*/*", "text/plain"):
        try:
            return _check_json_depth(body, orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"the body of the request was in an unknown format - accepted media types "
                              f"include: application/json, application/yaml, "
                              f"application/vnd.kubernetes.protobuf ({exc})") from None
    raise ApiError(415, f'the body of the request was in an unknown format - accepted media types include: '
                        f'application/json, application/yaml, application/vnd.kubernetes.protobuf '
                        f'(got "{kind}")', "UnsupportedMediaType")


def decode_with_duplicates(body: bytes, content_type: str | None) -> tuple[Any, list[str]] | None:
    """(decode_body, duplicate_fields) of a JSON body that decodes, from one parse; None for any other body
    (YAML, protobuf, a body decode_body refuses), which the caller hands to the two functions apart, so that
    its errors come in their usual order (strict duplicates before decoding)."""
    kind = media_type(content_type)
    if body.startswith(PROTOBUF_MAGIC) or not (kind.endswith("json") or kind in ("", "*/*", "text/plain")):
        return None
    try:
        parsed = _check_json_depth(body, orjson.loads(body))
    except (orjson.JSONDecodeError, ApiError):
        return None
    return parsed, _json_duplicates(body, parsed)


def duplicate_fields(body: bytes, content_type: str | None) -> list[str]:
    """Kubernetes' strict-decoding texts for keys given twice in a JSON or YAML body: `duplicate field
    "spec.replicas"` (JSON) or `line 3: key "a" already set in map` (YAML). [] when there are none or the
    body does not parse (decode_body reports that)."""
    kind = media_type(content_type)
    if kind == PROTOBUF_TYPE or body.startswith(PROTOBUF_MAGIC):
        return []
    if kind.endswith("yaml") and body.lstrip()[:1] not in (b"{", b"["):
        try:
            return load_yaml(body)[1]
        except ApiError:
            return []
    return _json_duplicates(body)


# --- JSON duplicates ---------------------------------------------------------------------------------------


_UNPARSED: Any = object()


class _Pairs(list):
    """A JSON object kept as its (key, value) pairs, so that repeated keys survive parsing."""


def _reencodes_identically(body: bytes, parsed: Any = _UNPARSED) -> bool:
    """True when the body is exactly orjson's encoding of what it parses to (`parsed`, when the caller has
    it). It then repeats no key: that encoding comes from dicts, which hold each key once. Compact JSON from
    orjson or Python clients passes; anything else (whitespace, escapes written differently, Go's HTML-safe
    escapes) takes the full check."""
    try:
        return orjson.dumps(orjson.loads(body) if parsed is _UNPARSED else parsed) == body.strip()
    except (ValueError, TypeError):  # orjson's decode/encode errors are ValueError/TypeError subclasses
        return False


def _json_duplicates(body: bytes, parsed: Any = _UNPARSED) -> list[str]:
    # The common case for programmatic clients, ~10x cheaper than the parse below.
    if _reencodes_identically(body, parsed):
        return []
    found = False

    def quick(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        result = dict(pairs)
        found = found or len(result) != len(pairs)
        return result

    try:
        json.loads(body, object_pairs_hook=quick)  # the common case: one C-speed pass, no duplicates
        if not found:
            return []
        tree = json.loads(body, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return []
    duplicates: list[str] = []
    pending: list[tuple[Any, str]] = [(tree, "")]
    while pending:
        value, path = pending.pop()
        if isinstance(value, _Pairs):
            seen: set[str] = set()
            for key, item in value:
                child = f"{path}.{key}" if path else key
                if key in seen:
                    duplicates.append(f'duplicate field "{child}"')
                seen.add(key)
                pending.append((item, child))
        elif isinstance(value, list):
            pending.extend((item, f"{path}[{index}]") for index, item in enumerate(value))
    return sorted(duplicates)


# --- guarded YAML ------------------------------------------------------------------------------------------


class _GuardedLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting and alias bombs and records duplicate mapping keys."""

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self.depth = 0
        self.aliases = 0
        self.duplicates: list[str] = []

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            self.aliases += 1
        self.depth += 1
        try:
            if self.depth > MAX_NESTING_DEPTH:
                raise bad_request(f"error converting YAML to JSON: nesting is deeper than {MAX_NESTING_DEPTH}")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def get_single_node(self) -> Node | None:
        node = super().get_single_node()
        if node is not None and self.aliases:
            _check_expansion(node)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode):
                if key_node.value in seen:
                    self.duplicates.append(f'line {key_node.start_mark.line + 1}: key "{key_node.value}" '
                                           f'already set in map')
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: Node) -> None:
    """Size of the document with every alias expanded, computed without expanding (memoized per node);
    refuses self-referencing aliases and documents past MAX_ALIAS_EXPANSION."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if children_done:
            in_progress.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[key] > MAX_ALIAS_EXPANSION:
                raise bad_request("error converting YAML to JSON: yaml: document contains excessive aliasing")
            continue
        if key in in_progress:
            raise bad_request("error converting YAML to JSON: yaml: anchor refers to itself")
        in_progress.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def _check_flow_depth(body: bytes) -> None:
    """PyYAML's scanner is quadratic in open flow collections, so deep `[[[[…` must be refused before it
    runs. Brackets inside strings count too: a conservative over-estimate that real objects never reach."""
    brackets = body.translate(None, _NOT_BRACKETS)
    if len(brackets) <= MAX_NESTING_DEPTH:
        return
    depth = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        if depth > MAX_NESTING_DEPTH:
            raise bad_request(f"error converting YAML to JSON: nesting is deeper than {MAX_NESTING_DEPTH}")


def load_yaml(body: bytes) -> tuple[Any, list[str]]:
    """One YAML document and its duplicate-key texts; malformed or hostile input is a 400."""
    _check_flow_depth(body)
    try:
        loader = _GuardedLoader(body)  # its reader refuses NUL and other unprintable characters at once
    except yaml.YAMLError as exc:
        raise bad_request(f"error converting YAML to JSON: {exc}") from None
    try:
        return loader.get_single_data(), loader.duplicates
    except yaml.YAMLError as exc:
        raise bad_request(f"error converting YAML to JSON: {exc}") from None
    finally:
        loader.dispose()


def _check_json_depth(body: bytes, value: Any) -> Any:
    """`_check_depth` for a value parsed from the JSON `body`: every level of nesting opens a bracket, so a
    body with at most MAX_NESTING_DEPTH of them (counted in C, strings included) cannot nest deeper."""
    if body.count(b"{") + body.count(b"[") <= MAX_NESTING_DEPTH:
        return value
    return _check_depth(value)


def _check_depth(value: Any) -> Any:
    """`value` itself, after making sure it nests no deeper than MAX_NESTING_DEPTH (checked iteratively)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_NESTING_DEPTH:
            raise bad_request(f"the request body nests deeper than {MAX_NESTING_DEPTH} levels")
        pending.extend((child, depth + 1) for child in children)
    return value


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
