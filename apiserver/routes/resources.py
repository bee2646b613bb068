"""Resource paths: /api/v1/... and /apis/{group}/{version}/..., parsed once and dispatched to the handlers.

    [/watch]/{plural}[/{name}[/{subresource}]]
    [/watch]/namespaces/{namespace}/{plural}[/{name}[/{subresource}]]
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from aiokube.api.errors import ApiError, bad_request
from apiserver.codec import decode_body, decode_with_duplicates, duplicate_fields
from apiserver.handlers import nodeproxy, subresources
from apiserver.handlers.common import add_warnings, go_bool, is_dry_run, json_response, with_type
from apiserver.handlers.create import WriteOptions, create_object
from apiserver.handlers.delete import delete_collection, delete_object, parse_delete_options
from apiserver.handlers.objectmeta import manager_from
from apiserver.handlers.patch import patch_object
from apiserver.handlers.read import get_object, list_objects
from apiserver.handlers.state import ServerState
from apiserver.handlers.update import update_object
from apiserver.handlers.validation import field_validation
from apiserver.handlers.watch import WatchStream, parse_watch
from apiserver.registry import ResourceHandle
from apiserver.tables import include_object, object_table, to_table, wants_table


@dataclass(frozen=True)
class Target:
    handle: ResourceHandle
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool

    @property
    def verb_resource(self) -> tuple[str, str]:
        return self.handle.info.plural, self.subresource or ""


class _NoQuery(QueryParams):
    """The query of a request without one: no parsing, and lookups that answer without raising KeyError
    inside (Mapping.get's path for a missing key), a measurable share of a small create's CPU."""

    def get(self, key: object, default: object = None) -> object:  # type: ignore[override]
        return default

    def getlist(self, key: object) -> list[str]:
        return []


_NO_QUERY = _NoQuery("")


def _query(request: Request) -> QueryParams:
    return request.query_params if request.scope.get("query_string") else _NO_QUERY


def _header(request: Request, name: bytes) -> str | None:
    """A request header (its first value), read off the ASGI scope: Starlette's Headers raises KeyError inside
    for every header that is absent, as Accept and User-Agent often are. Names arrive lowercase."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _not_found(path: str) -> ApiError:
    return ApiError(404, "the server could not find the requested resource", "NotFound",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": f"404 page not found: {path}"}]})


def resolve(state: ServerState, group: str, version: str, rest: list[str], path: str) -> Target:
    watch_path = bool(rest) and rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and not (group == "" and len(rest) == 3
                                                            and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3 or not all(rest):
        raise _not_found(path)
    handle = state.registry.get(group, version, rest[0])
    if handle is None or (namespace is not None and not handle.info.namespaced):
        raise _not_found(path)
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in handle.info.subresources:
        raise _not_found(path)
    if name is not None and handle.info.namespaced and namespace is None:
        raise _not_found(path)
    return Target(handle, namespace, name, sub, watch_path)


def _verb(method: str, target: Target, watch: bool) -> str:
    if method == "GET":
        if watch:
            return "watch"
        return "get" if target.name else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    raise ApiError(405, f"the server does not allow this method on the requested resource ({method})",
                   "MethodNotAllowed")


def _check_verb(target: Target, verb: str) -> None:
    info = target.handle.info
    if verb in ("update", "patch") and target.name is None:  # PUT and PATCH name one object, never a collection
        raise ApiError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed",
                       {"kind": info.plural, "group": info.group, "name": ""})
    if target.subresource:
        allowed: tuple[str, ...] = info.subresources[target.subresource][3]
    else:
        allowed = info.verbs
    if verb not in allowed and not (verb == "watch" and "list" in allowed and "watch" in info.verbs):
        raise ApiError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed",
                       {"kind": info.plural, "group": info.group, "name": target.name or ""})


async def _read_body(request: Request, state: ServerState) -> bytes:
    limit = state.config.max_body_bytes
    length = _header(request, b"content-length")
    if length and length.isdigit() and int(length) > limit:
        raise ApiError(413, "the request body is too large", "RequestEntityTooLarge")
    # The ASGI messages themselves rather than request.stream(): an async generator per request costs more
    # than the whole read of a typical body, which arrives in one message.
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "the request body is too large", "RequestEntityTooLarge")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _write_options(request: Request) -> WriteOptions:
    if not request.scope.get("query_string"):  # no query: every option at its default
        return WriteOptions(manager=manager_from(_header(request, b"user-agent"), None), user=request.scope.get("user"))
    query = _query(request)
    manager = query.get("fieldManager")
    if manager is not None and len(manager) > 128:
        raise bad_request("fieldManager: Too long: may not be more than 128 bytes")
    return WriteOptions(dry_run=is_dry_run(query, query.getlist("dryRun")),
                        field_validation=field_validation(query),
                        manager=manager_from(_header(request, b"user-agent"), manager),
                        force=go_bool(query.get("force")),
                        manager_explicit=bool(manager),
                        user=request.scope.get("user"))


async def serve(state: ServerState, request: Request, target: Target) -> tuple[str, Response]:
    """Run the request against its target; returns (verb, response) for metrics."""
    query = _query(request)
    method = request.method
    watch = target.watch_path or (method == "GET" and target.name is None and go_bool(query.get("watch")))
    verb = _verb(method, target, watch)
    _check_verb(target, verb)
    handle, ns, name, sub = target.handle, target.namespace, target.name, target.subresource
    accept = _header(request, b"accept")
    if verb in ("get", "list", "watch"):
        table = include_object(query.get("includeObject")) if wants_table(accept) else None
        if verb == "watch":
            if name is not None:  # the legacy /watch/.../{name} form watches one object
                selector = ",".join(filter(None, [query.get("fieldSelector"), f"metadata.name={name}"]))
                query = QueryParams({**query, "fieldSelector": selector})
            stream = WatchStream(state, parse_watch(handle, ns, query, table))
            return verb, StreamingResponse(stream.lines(), media_type="application/json",
                                           headers={"Cache-Control": "no-cache"})
        if verb == "list":
            result = await list_objects(handle, ns, query)
            if table is not None:
                return verb, json_response(to_table(handle, result["items"], mode=table, list_meta=result["metadata"]))
            return verb, json_response(result)
        assert name is not None
        if sub == "log":
            return verb, await nodeproxy.proxy_log(state, ns or "", name, query)
        if sub == "exec":
            raise nodeproxy.exec_over_plain_http()
        obj = await get_object(handle, ns, name)
        if sub == "scale":
            return verb, json_response(subresources.to_scale(obj))
        return verb, json_response(object_table(handle, obj, table) if table is not None else obj)
    body = await _read_body(request, state)
    # Keys given twice are found on the raw body (decoding keeps the last); fieldValidation decides as for
    # unknown fields. A create or update body in JSON is decoded here too, in the same parse.
    decoded: object = _NOT_DECODED
    duplicates: list[str] = []
    content_type = _header(request, b"content-type")
    both = await _off_loop_if_large(decode_with_duplicates, body, content_type) \
        if verb in ("create", "update") and body.strip() else None
    if both is not None:
        decoded, duplicates = both
    elif verb in ("create", "update", "patch"):
        duplicates = await _off_loop_if_large(duplicate_fields, body, content_type)
    if duplicates and field_validation(query) == "Strict":
        raise bad_request("strict decoding error: " + ", ".join(duplicates))
    response = await _serve_write(state, request, target, verb, body, decoded)
    if duplicates and field_validation(query) == "Warn":
        add_warnings(response, duplicates)
    return verb, response


_OFF_LOOP_BODY_BYTES = 256 * 1024
"""Bodies this large are parsed in a worker thread, so one big (or YAML) body does not stall every other
request for the whole parse."""

T = TypeVar("T")


async def _off_loop_if_large(parse: Callable[[bytes, str | None], T], body: bytes, content_type: str | None) -> T:
    if len(body) < _OFF_LOOP_BODY_BYTES:
        return parse(body, content_type)
    return await asyncio.to_thread(parse, body, content_type)


_NOT_DECODED = object()


async def _serve_write(state: ServerState, request: Request, target: Target, verb: str, body: bytes,
                       decoded: object = _NOT_DECODED) -> Response:
    """The write verbs (create, update, patch, delete, deletecollection) on a read body (and its decoded value,
    when the caller has decoded it)."""
    query = _query(request)
    handle, ns, name, sub = target.handle, target.namespace, target.name, target.subresource
    content_type = _header(request, b"content-type")
    if verb == "patch":
        assert name is not None
        opts = _write_options(request)
        if sub == "scale":
            return json_response(await subresources.patch_scale(state, handle, ns, name, body, content_type,
                                                                      opts))
        code, obj, warnings = await patch_object(state, handle, ns, name, body, content_type, opts,
                                                 subresource=sub or "")
        return json_response(with_type(obj, handle), code, warnings)
    if decoded is _NOT_DECODED:
        decoded = await _off_loop_if_large(decode_body, body, content_type) if body.strip() else None
    if verb in ("delete", "deletecollection"):
        dry = is_dry_run(query, query.getlist("dryRun"))
        options = parse_delete_options(decoded, query, dry)
        if verb == "delete":
            assert name is not None
            result = await delete_object(state, handle, ns, name, options)
            return json_response(with_type(result, handle) if result.get("kind") != "Status" else result)
        listing = await list_objects(handle, ns, query)
        return json_response(await delete_collection(state, handle, ns, listing["items"], options))
    if decoded is None:
        raise bad_request("the request body is empty")
    opts = _write_options(request)
    if verb == "create":
        if sub == "binding" or (handle.info.plural == "bindings" and name is None):
            pods = state.registry.handle("pods")
            return json_response(await subresources.bind_pod(state, pods, ns or "", name, decoded, opts), 201)
        if sub == "eviction":
            assert name is not None
            return json_response(await subresources.evict_pod(state, handle, ns or "", name, decoded,
                                                                    opts.dry_run), 201)
        if sub == "exec":
            raise nodeproxy.exec_over_plain_http()
        if name is not None:
            raise ApiError(405, "POST is not allowed on an object; use PUT or PATCH", "MethodNotAllowed")
        obj, warnings = await create_object(state, handle, ns, decoded, opts)
        return json_response(obj, 201, warnings)
    assert name is not None
    if sub == "scale":
        return json_response(await subresources.update_scale(state, handle, ns, name, decoded, opts))
    if sub == "finalize":
        return json_response(await subresources.finalize_namespace(state, handle, name, decoded, opts))
    code, obj, warnings = await update_object(state, handle, ns, name, decoded, opts, subresource=sub or "")
    return json_response(with_type(obj, handle), code, warnings)
