"""KeyedRangeAllocator: hands out integers of a range, one storage key per allocated value.

Allocation is `Storage.create` (compare mod_revision == 0) of `{key_prefix}/{label}`, whose value names the
owner (`namespace/name` of the Service). Whoever creates the key first owns the value, so concurrent API
servers never double-allocate. Re-allocating a value the same owner already holds succeeds (a retried
request, an update that keeps its IP).

Random allocation probes a few random offsets first (cheap while the range is sparse), then lists the
allocated keys once and picks among the free ones, so a nearly full range still finds its last free values.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from apiserver.storage.interface import KeyExistsError, KeyNotFoundError, Storage

# Random probes before falling back to one list of the allocated keys; a sparse range almost never needs more.
RANDOM_PROBES = 8


class RangeFullError(Exception):
    """Every value of the range is allocated."""


class AlreadyAllocatedError(Exception):
    """The requested value belongs to another owner."""

    def __init__(self, owner: str) -> None:
        super().__init__(f"already allocated to {owner}")
        self.owner = owner


class KeyedRangeAllocator:
    """Integers in [0, size) mapped to labels by `label_of`; `preferred_from` is where random picks start
    (Kubernetes keeps the low band of the service range for statically requested IPs)."""

    def __init__(self, storage: Storage, key_prefix: str, size: int, label_of: Callable[[int], str], *,
                 preferred_from: int = 0, rng: random.Random | None = None) -> None:
        self._storage = storage
        self._key_prefix = key_prefix.rstrip("/")
        self._size = size
        self._label_of = label_of
        self._preferred_from = preferred_from if preferred_from < size else 0
        self._rng = rng or random.Random()

    def key(self, offset: int) -> str:
        return f"{self._key_prefix}/{self._label_of(offset)}"

    async def owner(self, offset: int) -> str | None:
        kv = await self._storage.get(self.key(offset))
        return None if kv is None else _decode_owner(kv.value)

    async def claim(self, offset: int, owner: str) -> None:
        """Take `offset` for `owner`; raises AlreadyAllocatedError if someone else holds it."""
        try:
            await self._storage.create(self.key(offset), _encode_owner(owner))
        except KeyExistsError:
            current = await self.owner(offset)
            if current != owner:
                raise AlreadyAllocatedError(current or "?") from None

    async def claim_any(self, owner: str) -> int:
        """Take a free offset at random; raises RangeFullError when none is left."""
        for _ in range(RANDOM_PROBES):
            offset = self._random_offset()
            try:
                await self._storage.create(self.key(offset), _encode_owner(owner))
                return offset
            except KeyExistsError:
                continue
        # The range is busy: find the free values once, then race for them in random order.
        taken = await self._allocated_labels()
        free = [o for o in range(self._size) if self._label_of(o) not in taken]
        preferred = [o for o in free if o >= self._preferred_from]
        rest = [o for o in free if o < self._preferred_from]
        self._rng.shuffle(preferred)
        self._rng.shuffle(rest)
        for offset in preferred + rest:
            try:
                await self._storage.create(self.key(offset), _encode_owner(owner))
                return offset
            except KeyExistsError:
                continue
        raise RangeFullError()

    async def release(self, offset: int, owner: str | None = None) -> bool:
        """Free `offset` (only if `owner` holds it, when given). Returns whether a key was deleted."""
        key = self.key(offset)
        kv = await self._storage.get(key)
        if kv is None:
            return False
        if owner is not None and _decode_owner(kv.value) != owner:
            return False
        try:
            await self._storage.delete(key, expected_revision=kv.mod_revision)
        except KeyNotFoundError:
            return False
        return True

    async def allocated(self) -> dict[str, str]:
        """label -> owner of every allocated value (for tests and repair)."""
        result: dict[str, str] = {}
        start_after: str | None = None
        while True:
            page = await self._storage.list(self._key_prefix + "/", limit=1000, start_after=start_after)
            for kv in page.items:
                result[kv.key.rsplit("/", 1)[1]] = _decode_owner(kv.value)
            if not page.more or not page.items:
                return result
            start_after = page.items[-1].key

    async def _allocated_labels(self) -> set[str]:
        return set(await self.allocated())

    def _random_offset(self) -> int:
        return self._rng.randrange(self._preferred_from, self._size)


def _encode_owner(owner: str) -> bytes:
    return json.dumps({"owner": owner}).encode()


def _decode_owner(value: bytes) -> str:
    try:
        return str(json.loads(value).get("owner", ""))
    except (ValueError, AttributeError):
        return ""
