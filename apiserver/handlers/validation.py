"""Validation of a write: JSON schema (with fieldValidation Strict/Warn/Ignore), then the Strategy's defaults
and rules. Returns the warnings to send as `Warning: 299` headers; raises 400/422 Status errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokube.api.errors import bad_request, invalid
from aiokube.api.types import Obj
from apiserver.handlers.metavalidation import validate_shared_meta
from apiserver.handlers.state import ServerState
from apiserver.registry import ResourceHandle
from apiserver.schema import unknown_field_warning, unknown_fields_message

FIELD_VALIDATIONS = ("Strict", "Warn", "Ignore")


def field_validation(query: Mapping[str, str]) -> str:
    value = query.get("fieldValidation") or "Warn"
    if value not in FIELD_VALIDATIONS:
        raise bad_request(f'fieldValidation parameter unsupported: {value}; supported values are '
                          f'"Ignore", "Warn", "Strict"')
    return value


def _as_cause(error: Any) -> dict[str, str]:
    if isinstance(error, dict):
        return {"field": str(error.get("field", "")), "message": str(error.get("message", "")),
                "reason": str(error.get("reason", "FieldValueInvalid"))}
    return {"field": str(getattr(error, "field", "")), "message": str(getattr(error, "message", error)),
            "reason": str(getattr(error, "reason", "FieldValueInvalid"))}


def check_schema(state: ServerState, obj: Obj, *, group: str, version: str, kind: str, name: str,
                 mode: str) -> list[str]:
    """Schema validation of the object as the client sent it. Unknown fields are pruned from `obj` in place
    (Warn and Ignore) and nulls settled, as Kubernetes never stores what its typed structs cannot hold."""
    result = state.schemas.validate(group, version, kind, obj, mode)
    errors = list(getattr(result, "errors", []) or [])
    unknown = list(getattr(result, "unknown", []) or [])
    if errors:
        raise invalid(kind, group, name, [_as_cause(e) for e in errors])
    if unknown and mode == "Strict":
        raise bad_request(unknown_fields_message(unknown, kind=kind, version=version))
    result.prune_unknown()
    result.settle_nulls()
    if unknown and mode == "Warn":
        return [unknown_field_warning(p) for p in unknown]
    return []


def check_applied_config(state: ServerState, config: Obj, *, group: str, version: str, kind: str,
                         namespace: str | None, name: str) -> None:
    """A server-side apply configuration must fit its type before anything merges or defaults it (Kubernetes
    converts it to a typed value first): a wrongly typed field is the client's 400. It may be partial, so
    missing required fields are no error here (the merged object is validated as usual). Nulls are settled in
    place as decoding would."""
    result = state.schemas.validate(group, version, kind, config, "Ignore")
    wrong_types = [e for e in result.errors if e.get("reason") == "FieldValueTypeInvalid"]
    if wrong_types:
        first = wrong_types[0]
        raise bad_request(f"failed to create typed patch object ({namespace or ''}/{name}; {group}/{version}, "
                          f"Kind={kind}): .{first['field']}: {first['message']}")
    result.settle_nulls()


def check_strategy(handle: ResourceHandle, obj: Obj, old: Obj | None) -> None:
    """Strategy validation (and validate_update on updates) → 422 with causes."""
    causes = validate_shared_meta(obj) + list(handle.strategy.validate(obj))
    if old is not None:
        causes += handle.strategy.validate_update(obj, old)
    if causes:
        raise invalid(handle.info.kind, handle.info.group, obj.get("metadata", {}).get("name", ""), causes)
