"""Field errors the way Kubernetes reports them (k8s.io/apimachinery/pkg/util/validation/field).

Every rule in the strategies returns `Cause` dicts ({field, message, reason}); this module builds them with the
exact wording apimachinery uses, e.g. `Invalid value: "Foo": a lowercase RFC 1123 …` or
`Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure"`, so kubectl prints what it
prints against a real cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from apiserver.strategies.base import Cause

# Sentinel for errors that must not echo the value (apimachinery's omitValue).
OMIT = object()


class GoLiteral(str):
    """A value already rendered the way Go prints it (e.g. a struct literal); echoed without quoting."""


def go_value(value: Any) -> str:
    """Render a bad value like Go's fmt does in field.Error.ErrorBody: %q for strings, %v for numbers/bools,
    a Go-literal-ish form (%#v) for maps and lists."""
    if isinstance(value, GoLiteral):
        return str(value)
    if value is None or value is OMIT:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        if all(isinstance(v, str) for v in value.values()):
            inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
            return f"map[string]string{{{inner}}}"
        inner = ", ".join(f"{json.dumps(k)}:{go_value(v)}" for k, v in sorted(value.items()))
        return f"map[string]interface {{}}{{{inner}}}"
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return "[]string{" + ", ".join(json.dumps(v) for v in value) + "}"
        return "[]interface {}{" + ", ".join(go_value(v) for v in value) + "}"
    return str(value)


def _cause(field: str, reason: str, body: str, detail: str = "") -> Cause:
    return {"field": field, "message": f"{body}: {detail}" if detail else body, "reason": reason}


def required(field: str, detail: str = "") -> Cause:
    return _cause(field, "FieldValueRequired", "Required value", detail)


def invalid(field: str, value: Any, detail: str = "") -> Cause:
    if value is OMIT:
        return _cause(field, "FieldValueInvalid", "Invalid value", detail)
    return _cause(field, "FieldValueInvalid", f"Invalid value: {go_value(value)}", detail)


def not_supported(field: str, value: Any, supported: Iterable[str]) -> Cause:
    quoted = ", ".join(json.dumps(v) for v in supported)
    detail = f"supported values: {quoted}" if quoted else ""
    return _cause(field, "FieldValueNotSupported", f"Unsupported value: {go_value(value)}", detail)


def duplicate(field: str, value: Any) -> Cause:
    return _cause(field, "FieldValueDuplicate", f"Duplicate value: {go_value(value)}")


def not_found(field: str, value: Any) -> Cause:
    return _cause(field, "FieldValueNotFound", f"Not found: {go_value(value)}")


def forbidden(field: str, detail: str) -> Cause:
    return _cause(field, "FieldValueForbidden", "Forbidden", detail)


def too_long(field: str, max_length: int) -> Cause:
    return _cause(field, "FieldValueTooLong", "Too long", f"may not be more than {max_length} bytes")


def too_many(field: str, actual: int, max_items: int) -> Cause:
    return _cause(field, "FieldValueTooMany", f"Too many: {actual}", f"must have at most {max_items} items")


def immutable(field: str, value: Any) -> Cause:
    return invalid(field, value, "field is immutable")


def non_negative(field: str, value: Any) -> list[Cause]:
    """ValidateNonnegativeField: an int that must be >= 0."""
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [invalid(field, value, "must be greater than or equal to 0")]
    return []


def positive(field: str, value: Any) -> list[Cause]:
    if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
        return [invalid(field, value, "must be greater than zero")]
    return []
