"""Write pod status through the pods/status subresource, only when it changed.

Keeps the last status written per pod UID: it is both the de-duplication key and the `old` status that keeps
condition transition times stable while the informer's copy may still lag behind our own writes.
"""

from __future__ import annotations

import logging
from typing import Protocol

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj

log = logging.getLogger(__name__)


class StatusWriter(Protocol):
    async def patch(self, resource: str, name: str, body: Obj, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None) -> Obj: ...


class StatusManager:
    def __init__(self, api: StatusWriter) -> None:
        self.api = api
        self._written: dict[str, Obj] = {}

    def last(self, uid: str) -> Obj | None:
        return self._written.get(uid)

    def with_latest_status(self, pod: Obj) -> Obj:
        """The pod with our last written status when we wrote more recently than the informer saw."""
        written = self._written.get(pod["metadata"]["uid"])
        return {**pod, "status": written} if written is not None else pod

    async def set(self, pod: Obj, status: Obj) -> bool:
        """Patch `status` onto the pod unless it equals what is already there; True if a write happened."""
        uid = pod["metadata"]["uid"]
        if self._written.get(uid) == status or (uid not in self._written and pod.get("status") == status):
            self._written[uid] = status
            return False
        meta = pod["metadata"]
        try:
            await self.api.patch("pods", meta["name"], {"metadata": {"uid": uid}, "status": status},
                                 namespace=meta.get("namespace", "default"), patch_type="merge",
                                 subresource="status")
        except ApiError as e:
            if e.code in (404, 409):
                # Gone, or a different pod of the same name (uid precondition failed): nothing to report.
                log.info("status of %s/%s not written: %s", meta.get("namespace"), meta["name"], e.message)
                return False
            raise
        self._written[uid] = status
        return True

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)
