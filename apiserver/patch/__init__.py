"""PATCH bodies: one module per patch type, and `apply_patch`, the entry point the PATCH handler calls.

    apply_patch(original, body, content_type, group=…, version=…, kind=…, schemas=…) -> Obj

handles `application/json-patch+json` (json_patch.py), `application/merge-patch+json` (merge_patch.py) and
`application/strategic-merge-patch+json` (strategic.py). Server-side apply (`application/apply-patch+yaml`)
needs the field manager and force flag, so the handler calls `server_side_apply` (apply.py) directly; every
other write records its manager with `update_managed_fields` (managed_fields.py).
Errors: 400 BadRequest for a body that does not decode, 415 for an unknown patch type, 422 when the patch
cannot be applied.
"""

from __future__ import annotations

import json
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from apiserver.patch.apply import server_side_apply
from apiserver.patch.json_patch import json_patch
from apiserver.patch.managed_fields import update_managed_fields
from apiserver.patch.merge_patch import merge_patch
from apiserver.patch.strategic import strategic_merge_patch
from apiserver.schema import SchemaRegistry

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)


def decode_body(body: bytes | str, content_type: str) -> Any:
    """Decode a patch body; apply patches may be YAML, the others are JSON."""
    try:
        if content_type == APPLY_PATCH:
            import yaml
            return yaml.safe_load(body)
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, f"error decoding patch: {err}", "BadRequest") from err
    except Exception as err:  # yaml.YAMLError and friends
        raise ApiError(400, f"error decoding YAML: {err}", "BadRequest") from err


def apply_patch(original: Obj, body: bytes | str | Any, content_type: str, *, group: str, version: str,
                kind: str, schemas: SchemaRegistry) -> Obj:
    """The object that results from applying a JSON, merge or strategic merge patch to `original`.

    `body` is the raw request body, or the already decoded patch (a list or dict).
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        raise ApiError(415, f"the body of the request was in an unknown format - accepted media types "
                            f"include: {', '.join(PATCH_TYPES)}", "UnsupportedMediaType")
    patch = decode_body(body, media_type) if isinstance(body, bytes | str) else body
    if media_type == JSON_PATCH:
        return json_patch(original, patch)
    if not isinstance(patch, dict):
        raise ApiError(400, "error decoding patch: the patch must be a JSON object", "BadRequest")
    if media_type == MERGE_PATCH:
        result = merge_patch(original, patch)
        assert isinstance(result, dict)
        return result
    schema = schemas.definition_for(group, version, kind) or {}
    return strategic_merge_patch(original, patch, schema, schemas)


__all__ = [
    "APPLY_PATCH", "JSON_PATCH", "MERGE_PATCH", "PATCH_TYPES", "STRATEGIC_MERGE_PATCH", "apply_patch",
    "decode_body", "json_patch", "merge_patch", "server_side_apply", "strategic_merge_patch",
    "update_managed_fields",
]
