"""Small helpers of every verb: query parameters, timestamps, (de)serialising stored values, JSON responses,
and the translation of storage errors into Kubernetes Status errors."""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Iterator, Mapping

import orjson
from starlette.responses import Response

from aiokube.api.errors import ApiError, already_exists, bad_request, conflict, expired, not_found
from aiokube.api.types import Obj
from apiserver.registry import ResourceHandle
from apiserver.rfc3339 import format_seconds
from apiserver.storage.interface import (
    CompactedError,
    ConflictError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    StorageError,
    StorageUnavailableError,
)

JSON = "application/json"
MODIFIED_MESSAGE = "the object has been modified; please apply your changes to the latest version and try again"
_GO_TRUE = {"1", "t", "true"}
_GO_FALSE = {"0", "f", "false", ""}


def go_bool(value: str | None, default: bool = False) -> bool:
    """strconv.ParseBool: 1/t/T/TRUE/true/True and their false twins; anything else is a 400."""
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _GO_TRUE:
        return True
    if lowered in _GO_FALSE:
        return False
    raise bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax')


_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1


def query_int(query: Mapping[str, str], name: str) -> int | None:
    """strconv.ParseInt(value, 10, 64) of a query parameter: Python's int() would also take " 5", "1_000" and
    non-ASCII digits, and values past int64 would fail later in etcd's protobufs."""
    value = query.get(name)
    if value is None or value == "":
        return None
    if not _GO_INT.fullmatch(value):
        raise bad_request(f'invalid value for {name}: strconv.ParseInt: parsing "{value}": invalid syntax')
    number = int(value)
    if not -_INT64_MAX - 1 <= number <= _INT64_MAX:
        raise bad_request(f'invalid value for {name}: strconv.ParseInt: parsing "{value}": value out of range')
    return number


def resource_version_param(value: str) -> int | None:
    """A resourceVersion query parameter: None when unset, else a non-negative int64 (etcd revisions are
    int64); anything else is a 400."""
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or int(value) > _INT64_MAX:
        raise bad_request(f'resourceVersion: Invalid value: "{value}": must be a non-negative integer')
    return int(value)


def is_dry_run(query: Mapping[str, str], values: list[str] | None = None) -> bool:
    runs = values if values is not None else [query.get("dryRun", "")]
    for value in runs:
        if value and value != "All":
            raise bad_request(f'Invalid value: "{value}": supported values: "All"')
    return any(runs)


_LATEST_TIMESTAMP = 253402300799.0  # 9999-12-31T23:59:59Z, the last second RFC 3339 can write


def now_rfc3339(clock: float | None = None) -> str:
    """RFC 3339 (UTC, seconds) of `clock` or now; a clock past year 9999 (now + an absurd grace period) is
    written as the last representable second rather than overflowing."""
    stamp = min(time.time() if clock is None else clock, _LATEST_TIMESTAMP)
    return format_seconds(stamp)


_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's utilrand alphabet (no vowels, no 0/1/3)


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))


def from_kv(kv: KeyValue) -> Obj:
    obj: Obj = orjson.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


MAX_STORED_BYTES = 1_572_864 - 8192
"""etcd refuses requests over its --max-request-bytes (1.5 MiB by default); the key and transaction need the
rest. Larger objects are refused before the write, as etcd would, rather than failing in storage."""


def to_stored(obj: Obj) -> bytes:
    """The object as stored in etcd (without its resourceVersion, which is etcd's mod revision)."""
    meta = obj.get("metadata", {})
    rv = meta.pop("resourceVersion", None)
    try:
        stored = orjson.dumps(obj)
        if len(stored) > MAX_STORED_BYTES:
            raise ApiError(413, "etcdserver: request is too large", "RequestEntityTooLarge")
        return stored
    finally:
        if rv is not None:
            meta["resourceVersion"] = rv


def with_type(obj: Obj, handle: ResourceHandle) -> Obj:
    obj["apiVersion"] = handle.info.api_version
    obj["kind"] = handle.info.kind
    return obj


class JsonResponse(Response):
    """An encoded JSON body with its two headers set directly: Starlette's general header set-up costs a
    small response more than the encoding does."""

    media_type = JSON

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-type", _JSON_BYTES)]
        if status_code >= 200 and status_code not in (204, 304):  # those carry no body, hence no length
            self.raw_headers.insert(0, (b"content-length", str(len(body)).encode()))


_JSON_BYTES = JSON.encode()


def json_response(obj: object, status: int = 200, warnings: list[str] | None = None) -> Response:
    response = JsonResponse(orjson.dumps(obj), status)
    return add_warnings(response, warnings) if warnings else response


def add_warnings(response: Response, warnings: list[str] | None) -> Response:
    for message in warnings or ():
        # One `Warning: 299 - "…"` header per message, as Kubernetes sends them (kubectl prints each).
        escaped = message.replace("\\", "\\\\").replace('"', '\\"')
        response.raw_headers.append((b"warning", f'299 - "{escaped}"'.encode()))
    return response


def status_success(handle: ResourceHandle, obj: Obj) -> Obj:
    meta = obj.get("metadata", {})
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": meta.get("name", ""), "group": handle.info.group, "kind": handle.info.plural,
                        "uid": meta.get("uid", "")}}


@contextlib.contextmanager
def storage_errors(handle: ResourceHandle, name: str) -> Iterator[None]:
    """Turn storage failures into the Status Kubernetes returns for them."""
    try:
        yield
    except StorageError as exc:
        status = storage_error_status(exc, handle, name)
        if status is None:
            raise
        raise status from None


def storage_error_status(error: StorageError, handle: ResourceHandle, name: str) -> ApiError | None:
    """The Status error Kubernetes returns for a storage failure on `name` of `handle`'s resource; None for
    a failure that is the server's own (a 500)."""
    info = handle.info
    if isinstance(error, KeyExistsError):
        return already_exists(info.plural, info.group, name)
    if isinstance(error, KeyNotFoundError):
        return not_found(info.plural, info.group, name)
    if isinstance(error, ConflictError):
        return conflict(info.plural, info.group, name, MODIFIED_MESSAGE)
    if isinstance(error, CompactedError):
        return expired(f"The resourceVersion for the provided watch is too old. ({error})")
    if isinstance(error, StorageUnavailableError):
        return ApiError(503, f"etcd is unavailable: {error}", "ServiceUnavailable")
    return None
