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
    (Warn and Ignore), as Kubernetes never stores what its typed structs cannot hold."""
    result = state.schemas.validate(group, version, kind, obj, mode)
    errors = list(getattr(result, "errors", []) or [])
    unknown = list(getattr(result, "unknown", []) or [])
    if errors:
        raise invalid(kind, group, name, [_as_cause(e) for e in errors])
    if unknown and mode == "Strict":
        raise bad_request(unknown_fields_message(unknown, kind=kind, version=version))
    result.prune_unknown()
    if unknown and mode == "Warn":
        return [unknown_field_warning(p) for p in unknown]
    return []


def check_strategy(handle: ResourceHandle, obj: Obj, old: Obj | None) -> None:
    """Strategy validation (and validate_update on updates) → 422 with causes."""
    causes = validate_shared_meta(obj) + list(handle.strategy.validate(obj))
    if old is not None:
        causes += handle.strategy.validate_update(obj, old)
    if causes:
        raise invalid(handle.info.kind, handle.info.group, obj.get("metadata", {}).get("name", ""), causes)
