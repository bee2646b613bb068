"""JSON merge patch (`application/merge-patch+json`, RFC 7386): objects merge, null deletes, all else replaces."""

from __future__ import annotations

import copy
from typing import Any


def merge_patch(original: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch; `original` is not modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
