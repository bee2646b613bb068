"""Writing a status through the /status subresource, retrying a conflict on a fresh copy.

The status a controller computes depends only on its caches, never on the stored status it overwrites, so on
409 it is safe to re-read the object and put the same status on it.
"""

from __future__ import annotations

import copy
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj

_CONFLICT_RETRIES = 3


async def write_status(client: Any, resource: str, obj: Obj, status: dict[str, Any]) -> Obj | None:
    """PUT obj with `status`; None when the object is gone."""
    current = copy.deepcopy(obj)
    meta = current["metadata"]
    for attempt in range(_CONFLICT_RETRIES):
        current["status"] = status
        try:
            result: Obj = await client.update_status(resource, current)
            return result
        except ApiError as err:
            if err.code == 404:
                return None
            if err.code != 409 or attempt == _CONFLICT_RETRIES - 1:
                raise
        try:
            current = await client.get(resource, meta["name"], namespace=meta.get("namespace"))
        except ApiError as err:
            if err.code == 404:
                return None
            raise
    return None
