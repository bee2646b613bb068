"""The informer's local cache: objects by key, plus named secondary indexes (client-go's Indexer).

An index function maps an object to the index values it is filed under (a pod under its node name, a
ReplicaSet's pods under their owner's uid); `by_index(name, value)` answers "which objects have value"
without scanning. Ready-made index functions are at the bottom.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable

from aiokube.api.types import Obj
from aiokube.client.keys import object_key

IndexFunc = Callable[[Obj], Iterable[str]]


class Store:
    def __init__(self) -> None:
        self._items: dict[str, Obj] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        # index name -> index value -> keys; kept in step with _items on every write
        self._indices: dict[str, dict[str, set[str]]] = {}

    # -- reads ------------------------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def get_by_object(self, obj: Obj) -> Obj | None:
        return self._items.get(object_key(obj))

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def keys(self) -> builtins.list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def by_index(self, index_name: str, value: str) -> builtins.list[Obj]:
        keys = self.index_keys(index_name, value)
        return [self._items[k] for k in sorted(keys)]

    def index_keys(self, index_name: str, value: str) -> set[str]:
        if index_name not in self._indices:
            raise KeyError(f"no index named {index_name!r}")
        return set(self._indices[index_name].get(value, ()))

    # -- writes -----------------------------------------------------------------------------------------

    def add_index(self, name: str, func: IndexFunc) -> None:
        """Register an index; objects already stored are indexed at once."""
        self._index_funcs[name] = func
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, key, obj)

    def upsert(self, obj: Obj) -> Obj | None:
        """Store obj under its key; return the object it replaced (None for a new key)."""
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name in self._index_funcs:
            self._index_one(name, key, obj)
        return old

    def delete(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _index_one(self, name: str, key: str, obj: Obj) -> None:
        index = self._indices[name]
        for value in self._index_funcs[name](obj):
            index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, func in self._index_funcs.items():
            index = self._indices[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


# -- ready-made index functions ---------------------------------------------------------------------------

def namespace_index(obj: Obj) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def owner_uid_index(obj: Obj) -> list[str]:
    """Filed under every owner's uid, so a controller finds the objects it owns."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [ref["uid"] for ref in refs if ref.get("uid")]


def controller_uid_index(obj: Obj) -> list[str]:
    """Filed under the uid of the owner reference marked controller=true only."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [ref["uid"] for ref in refs if ref.get("controller") and ref.get("uid")]


def node_name_index(obj: Obj) -> list[str]:
    """Pods by spec.nodeName; unscheduled pods are filed under ""."""
    return [(obj.get("spec") or {}).get("nodeName") or ""]
