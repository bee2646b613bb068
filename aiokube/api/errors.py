"""Kubernetes metav1.Status errors, shared by the API server (raising) and the client (decoding).

`ApiError` carries a Status; `status_for` builds one. Reasons and codes follow apimachinery's
`StatusReason` values so kubectl prints its usual messages.
"""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj

REASON_BY_CODE = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_for(code: int, message: str, reason: str | None = None, details: dict[str, Any] | None = None) -> Obj:
    status: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or REASON_BY_CODE.get(code, ""),
        "code": code,
    }
    if details:
        status["details"] = details
    return status


class ApiError(Exception):
    """An API failure expressed as a metav1.Status."""

    def __init__(self, code: int, message: str, reason: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASON_BY_CODE.get(code, "")
        self.details = details or {}

    @classmethod
    def from_status(cls, status: Obj, fallback_code: int = 500) -> ApiError:
        return cls(int(status.get("code") or fallback_code), str(status.get("message", "")),
                   status.get("reason") or None, status.get("details") or None)

    def status(self) -> Obj:
        return status_for(self.code, self.message, self.reason, self.details or None)

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(404, f'{qualified(resource, group)} "{name}" not found', "NotFound",
                    {"name": name, "group": group, "kind": resource})


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(409, f'{qualified(resource, group)} "{name}" already exists', "AlreadyExists",
                    {"name": name, "group": group, "kind": resource})


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(409, f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
                    "Conflict", {"name": name, "group": group, "kind": resource})


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    """422 Invalid; each cause is {field, message, reason} as in metav1.StatusCause."""
    summary = ", ".join(f"{c.get('field', '')}: {c.get('message', '')}" if c.get("field") else c.get("message", "")
                        for c in causes)
    if len(causes) > 1:
        summary = f"[{summary}]"
    return ApiError(422, f'{kind}{"." + group if group else ""} "{name}" is invalid: {summary}', "Invalid",
                    {"name": name, "group": group, "kind": kind, "causes": causes})


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def expired(message: str) -> ApiError:
    return ApiError(410, message, "Expired")
