"""metadata.managedFields bookkeeping: who owns which fields (structured-merge-diff semantics, simplified).

Every write records its field manager. An Update entry (kubectl create/edit/scale, controllers) gains the
fields it added or changed and takes them away from other managers (updates never conflict); an Apply entry
(server-side apply, apiserver/patch/apply.py) owns exactly the fields of its last applied configuration.
Fields that disappear from the object disappear from every entry. Entries look as Kubernetes writes them:

    {"manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": "…Z",
     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}   (+ "subresource" when set)

Known simplification: intermediate struct fields added by an Update are not marked with "." (Kubernetes marks
those Go pointer structs, which the JSON schema cannot tell apart); leaves, map entries and list items are.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass
from typing import Any

from aiokube.api.types import Obj
from apiserver.patch.fieldpath import (
    FieldPath,
    FieldSet,
    FieldSummary,
    SchemaWalker,
    from_fields_v1,
    to_fields_v1,
)
from apiserver.rfc3339 import format_seconds
from apiserver.schema import FieldMeta, SchemaRegistry

# Identity and server-owned fields are never tracked (Kubernetes' field manager resets these too).
IGNORED_PATHS: frozenset[FieldPath] = frozenset(
    [("f:apiVersion",), ("f:kind",)]
    + [("f:metadata", f"f:{name}") for name in (
        "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
        "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "generateName")])


def utc_now(at: float | str | None = None) -> str:
    """RFC 3339 seconds in UTC, as metav1.Time serializes; accepts a Unix time or an existing string."""
    if isinstance(at, str):
        return at
    return format_seconds(time.time() if at is None else at)


@dataclass
class ManagerEntry:
    """One managedFields entry with its fields decoded into a set."""

    manager: str
    operation: str
    api_version: str
    time: str
    fields: FieldSet
    subresource: str = ""

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> ManagerEntry:
        return cls(manager=str(raw.get("manager", "")), operation=str(raw.get("operation", "Update")),
                   api_version=str(raw.get("apiVersion", "")), time=str(raw.get("time") or ""),
                   fields=from_fields_v1(raw.get("fieldsV1")), subresource=str(raw.get("subresource") or ""))

    def encode(self, fields_v1: dict[str, Any] | None = None) -> dict[str, Any]:
        """The stored entry; `fields_v1` is the fields' trie when the caller built it already."""
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation,
                               "apiVersion": self.api_version, "time": self.time, "fieldsType": "FieldsV1",
                               "fieldsV1": to_fields_v1(self.fields) if fields_v1 is None else fields_v1}
        if self.subresource:
            out["subresource"] = self.subresource
        return out

    def same_owner(self, manager: str, operation: str, api_version: str | None, subresource: str) -> bool:
        return (self.manager == manager and self.operation == operation and self.subresource == subresource
                and (api_version is None or operation == "Apply" or self.api_version == api_version))

    def display(self) -> str:
        """How conflict messages name this manager."""
        if self.operation == "Update":
            return f'"{self.manager}" using {self.api_version}'
        return f'"{self.manager}"'


def decode_entries(obj: Obj | None) -> list[ManagerEntry]:
    raw = ((obj or {}).get("metadata") or {}).get("managedFields") or []
    return [ManagerEntry.decode(e) for e in raw if isinstance(e, dict)]


def encode_entries(obj: Obj, entries: list[ManagerEntry]) -> None:
    kept = [e for e in entries if e.fields]
    kept.sort(key=lambda e: (e.operation, e.time, e.manager, e.api_version, e.subresource))
    metadata = obj.setdefault("metadata", {})
    if kept:
        metadata["managedFields"] = [e.encode() for e in kept]
    else:
        metadata.pop("managedFields", None)


def without_managed_fields(obj: Obj | None) -> Obj:
    out = copy.copy(obj or {})
    if isinstance(out.get("metadata"), dict):
        out["metadata"] = {k: v for k, v in out["metadata"].items() if k != "managedFields"}
    return out


def tracked(fields: FieldSet) -> FieldSet:
    return {p for p in fields if p and p[:2] not in IGNORED_PATHS and p[:1] not in IGNORED_PATHS}


class ObjectFields:
    """Field sets of one object under its kind's schema."""

    def __init__(self, schemas: SchemaRegistry, api_version: str, kind: str) -> None:
        group, _, version = api_version.rpartition("/")
        self.walker = SchemaWalker(schemas)
        self.root = FieldMeta(schema=schemas.definition_for(group, version, kind) or {})

    @staticmethod
    @functools.lru_cache(maxsize=512)
    def of(schemas: SchemaRegistry, api_version: str, kind: str) -> ObjectFields:
        """The shared instance for a kind: it holds only the (fixed) schemas, and building it costs a
        create about as much as its uid."""
        return ObjectFields(schemas, api_version, kind)

    def all_paths(self, obj: Obj) -> FieldSet:
        return self.walker.all_paths(self.root, without_managed_fields(obj))

    def leaves(self, obj: Obj) -> dict[FieldPath, Any]:
        return self.walker.leaf_values(self.root, without_managed_fields(obj))

    def applied(self, obj: Obj) -> FieldSet:
        return tracked(self.walker.applied_fields(self.root, without_managed_fields(obj)))

    def members(self, obj: Obj) -> FieldSet:
        """List items and map entries: nodes that are owned themselves, not only through their leaves."""
        return self.walker.member_nodes(self.root, without_managed_fields(obj))

    def summary(self, obj: Obj) -> FieldSummary:
        """leaves, all_paths and members in one walk."""
        return self.walker.summary(self.root, without_managed_fields(obj))


def update_managed_fields(old: Obj | None, new: Obj, *, manager: str, operation: str = "Update",
                          subresource: str = "", api_version: str, now: str | float | None = None,
                          schemas: SchemaRegistry | None = None) -> None:
    """Record a non-apply write of `new` (replacing `old`, None on create) by `manager` in new's managedFields.

    A request that sends `managedFields: []` clears all entries first, as Kubernetes allows.
    """
    schemas = schemas or SchemaRegistry.load()
    fields = ObjectFields.of(schemas, str(new.get("apiVersion") or api_version), str(new.get("kind", "")))
    new_meta = new.get("metadata") or {}
    if "managedFields" in new_meta and new_meta["managedFields"] is not None and (
            old is None or new_meta["managedFields"] != (old.get("metadata") or {}).get("managedFields")):
        entries = decode_entries(new)
    else:
        entries = decode_entries(old)
    if old is None and not entries:
        _record_creation(new, fields, manager, operation, subresource, api_version, now)
        return
    old_summary = fields.summary(old) if old else FieldSummary()
    new_summary = fields.summary(new)
    old_leaves, new_leaves = old_summary.leaves, new_summary.leaves
    old_paths, new_paths = old_summary.paths, new_summary.paths
    changed = tracked({p for p, v in new_leaves.items() if p not in old_leaves or old_leaves[p] != v})
    added_members = tracked(new_summary.members - old_paths)
    modified = {p for p in changed if p in old_leaves}

    mine = next((e for e in entries if e.same_owner(manager, operation, api_version, subresource)), None)
    for entry in entries:
        if entry is not mine:
            entry.fields = {p for p in entry.fields - modified if p in new_paths}
    gained = changed | added_members
    if mine is None and gained:
        mine = ManagerEntry(manager, operation, api_version, utc_now(now), set(), subresource)
        entries.append(mine)
    if mine is not None:
        updated = {p for p in mine.fields | gained if p in new_paths}
        if updated != mine.fields or gained:
            mine.time = utc_now(now)
        mine.fields = updated
        mine.api_version = api_version
    encode_entries(new, entries)


def _record_creation(new: Obj, fields: ObjectFields, manager: str, operation: str, subresource: str,
                     api_version: str, now: str | float | None) -> None:
    """update_managed_fields for a create whose body brings no entries: the writer owns every tracked leaf
    and member of the object. One walk over the object without its untracked parts (identity and
    server-owned fields, the only ones IGNORED_PATHS names), building the FieldsV1 trie as it goes."""
    trie = fields.walker.owned_trie(fields.root, _tracked_part(new))
    metadata = new.setdefault("metadata", {})
    if trie:
        entry = ManagerEntry(manager, operation, api_version, utc_now(now), set(), subresource)
        metadata["managedFields"] = [entry.encode(trie)]
    else:
        metadata.pop("managedFields", None)


def _tracked_part(obj: Obj) -> Obj:
    """`obj` without the fields IGNORED_PATHS names (shallow: only the top level and metadata are copied).
    A metadata left empty is dropped rather than kept as an empty value, which would make it a leaf."""
    out = {name: value for name, value in obj.items() if name not in _IGNORED_TOP}
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        kept = {name: value for name, value in metadata.items() if name not in _IGNORED_METADATA}
        if kept or not metadata:
            out["metadata"] = kept
        else:
            del out["metadata"]
    return out


_IGNORED_TOP = frozenset(path[0][2:] for path in IGNORED_PATHS if len(path) == 1)
_IGNORED_METADATA = frozenset(path[1][2:] for path in IGNORED_PATHS if len(path) == 2 and path[0] == "f:metadata")
