"""The storage contract the API server is written against (kine-style: every verb carries revisions).

Keys are strings such as `/registry/apps/deployments/default/web`; values are opaque bytes (JSON of the
object without its resourceVersion, which is always the key's mod_revision). Every write returns the
revision it committed at. Exceptions:

    StorageError
    ├── KeyExistsError        create of a key that exists            (API: 409 AlreadyExists)
    ├── KeyNotFoundError      update/delete of a key that is absent  (API: 404 NotFound)
    ├── ConflictError         expected revision differs              (API: 409 Conflict)
    ├── CompactedError        revision older than retained history   (API: 410 Expired)
    └── StorageUnavailableError  the backend cannot be reached       (API: 503, retried by clients)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol


class StorageError(Exception):
    pass


class KeyExistsError(StorageError):
    pass


class KeyNotFoundError(StorageError):
    pass


class ConflictError(StorageError):
    def __init__(self, message: str, current: KeyValue | None = None) -> None:
        super().__init__(message)
        self.current = current


class CompactedError(StorageError):
    def __init__(self, message: str, compact_revision: int = 0) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


class StorageUnavailableError(StorageError):
    pass


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int  # the store revision the list is consistent at
    more: bool  # True when limit cut the result short
    remaining: int  # how many keys under the prefix were left out (0 when more is False)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: Literal["PUT", "DELETE"]
    key: str
    value: bytes | None  # the new value; None for DELETE
    prev_value: bytes | None  # the value before this event (None for a create)
    revision: int  # mod_revision of this event (for DELETE: the revision of the delete)
    create_revision: int = 0


class Storage(Protocol):
    async def get(self, key: str) -> KeyValue | None: ...

    async def list(self, prefix: str, *, limit: int = 0, start_after: str | None = None,
                   revision: int | None = None) -> ListResult:
        """Keys under `prefix` in key order, after `start_after` if given, at `revision` (or the latest).
        A `revision` older than the compacted revision raises CompactedError."""
        ...

    async def create(self, key: str, value: bytes) -> int:
        """Create only if absent (compare mod_revision == 0); return the committed revision."""
        ...

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> int:
        """Compare-and-swap: write only if the key's mod_revision equals `expected_revision`."""
        ...

    async def delete(self, key: str, *, expected_revision: int | None = None) -> tuple[KeyValue, int]:
        """Delete (optionally only at `expected_revision`); return the deleted value and the delete revision."""
        ...

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        """Every change under `prefix` with revision >= start_revision, in order, never a gap; resumes by
        itself after a connection loss from the last delivered revision + 1. Raises CompactedError if
        start_revision is no longer in history."""
        ...

    async def current_revision(self) -> int: ...

    async def compact(self, revision: int) -> None: ...

    async def close(self) -> None: ...
