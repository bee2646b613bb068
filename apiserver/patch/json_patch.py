"""JSON patch (`application/json-patch+json`, RFC 6902) on top of the `jsonpatch` package.

A body that is not a list of operations is a 400; an operation that cannot be applied (a missing path, a failed
`test`) is a 422, as the API server answers.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj


def json_patch(original: Obj, operations: Any) -> Obj:
    """Apply RFC 6902 operations to a copy of `original`."""
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise ApiError(400, "json patch must be a JSON array of operations", "BadRequest")
    try:
        patch = jsonpatch.JsonPatch(operations)
        result = patch.apply(original, in_place=False)
    except jsonpatch.InvalidJsonPatch as err:
        raise ApiError(400, f"invalid json patch: {err}", "BadRequest") from err
    except jsonpatch.JsonPatchTestFailed as err:
        raise ApiError(422, f"the server rejected our request due to an error in our request: {err}",
                       "Invalid") from err
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException, jsonpatch.JsonPatchException,
            TypeError, KeyError, IndexError) as err:
        raise ApiError(422, f"the server rejected our request due to an error in our request: {err}",
                       "Invalid") from err
    if not isinstance(result, dict):
        raise ApiError(422, "json patch must leave an object", "Invalid")
    return result
