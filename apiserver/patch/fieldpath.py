"""Field paths and field sets, the vocabulary of managedFields (structured-merge-diff's fieldpath).

A path is a tuple of path elements written exactly as FieldsV1 keys are: `f:<field>` for a struct field or map
key, `k:{"name":"nginx"}` for an associative-list item (its key fields as sorted compact JSON), `v:<json>` for
a set item and `i:<n>` for an atomic-list position (never produced here). A field set is a plain Python
`set` of such paths; FieldsV1 is its trie (`"."` marks a node that is itself a member).

`SchemaWalker` knows, per schema node, whether a value is a scalar, a struct, a map or a list and of which list
type, which is all server-side apply and managedFields need to enumerate an object's fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from apiserver.schema import FieldMeta, SchemaRegistry

PathElement = str
FieldPath = tuple[PathElement, ...]
FieldSet = set[FieldPath]


def field_element(name: str) -> PathElement:
    return f"f:{name}"


def key_element(item: dict[str, Any], keys: Iterable[str]) -> PathElement:
    return "k:" + json.dumps({k: item.get(k) for k in sorted(keys) if k in item}, separators=(",", ":"),
                             sort_keys=True)


def value_element(value: Any) -> PathElement:
    return "v:" + json.dumps(value, separators=(",", ":"), sort_keys=True)


def to_fields_v1(fields: Iterable[FieldPath]) -> dict[str, Any]:
    """Encode a field set as the FieldsV1 trie Kubernetes stores (`{"f:spec":{"f:replicas":{}}}`)."""
    paths = set(fields)
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for element in path:
            node = node.setdefault(element, {})
    # A member that also has children is written with a "." entry.
    for path in paths:
        node = root
        for element in path:
            node = node[element]
        if node:
            node["."] = {}
    return _sorted_trie(root)


def _sorted_trie(node: dict[str, Any]) -> dict[str, Any]:
    return {k: _sorted_trie(node[k]) for k in sorted(node, key=lambda k: (k != ".", k))}


def _add_child(children: dict[str, Any], element: PathElement, sub: dict[str, Any] | None) -> None:
    """Add a list item's trie; items with the same key (invalid, but possible in a body) own their union."""
    if sub is None:
        return
    children[element] = _sorted_trie(_union(children[element], sub)) if element in children else sub


def _union(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for name, child in b.items():
        out[name] = _union(out[name], child) if name in out else child
    return out


def from_fields_v1(trie: dict[str, Any] | None) -> FieldSet:
    """Decode a FieldsV1 trie into a field set."""
    out: FieldSet = set()

    def walk(node: dict[str, Any], prefix: FieldPath) -> None:
        for element, child in node.items():
            if element == ".":
                out.add(prefix)
                continue
            path = (*prefix, element)
            if not child:
                out.add(path)
            else:
                walk(child, path)

    walk(trie or {}, ())
    out.discard(())
    return out


def path_string(path: FieldPath) -> str:
    """Render a path as structured-merge-diff prints it: `.spec.containers[name="nginx"].image`."""
    out = []
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            out.append("." + rest)
        elif kind == "k":
            keys = json.loads(rest)
            out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]")
        elif kind == "v":
            out.append(f"[={rest}]")
        else:
            out.append(f"[{rest}]")
    return "".join(out)


@dataclass(frozen=True)
class Node:
    """How one schema node treats its value: "scalar", "struct", "map", "atomic" or a list kind."""

    kind: str  # scalar | struct | map | atomic | list-map | list-set | list-atomic
    schema: dict[str, Any]
    keys: tuple[str, ...] = ()


@dataclass
class FieldSummary:
    """What managedFields needs of one object, gathered in a single walk (see SchemaWalker.summary)."""

    leaves: dict[FieldPath, Any] = field(default_factory=dict)
    paths: FieldSet = field(default_factory=set)
    members: FieldSet = field(default_factory=set)


_NO_META = FieldMeta()
_SCALAR, _LIST, _DICT = 0, 1, 2  # the shapes of value SchemaWalker.node tells apart
_LEAF_KINDS = frozenset({"scalar", "atomic", "list-atomic"})


class SchemaWalker:
    """Classifies values by schema for server-side apply's field sets."""

    def __init__(self, schemas: SchemaRegistry) -> None:
        self.schemas = schemas

    def node(self, meta: FieldMeta, value: Any) -> Node:
        shape = _LIST if isinstance(value, list) else _DICT if isinstance(value, dict) else _SCALAR
        known: Node | None = meta.nodes.get(shape)
        if known is None:
            known = meta.nodes[shape] = self._classify(meta, shape)
        return known

    @staticmethod
    def _classify(meta: FieldMeta, shape: int) -> Node:
        schema = meta.schema
        if shape == _LIST:
            list_type = meta.list_type
            if list_type is None and meta.merge_key:
                list_type = "map"  # strategic-merge lists without list-type are keyed by their merge key
            if list_type == "map":
                return Node("list-map", meta.item_schema, meta.list_map_keys or (meta.merge_key or "name",))
            if list_type == "set":
                return Node("list-set", meta.item_schema)
            return Node("list-atomic", meta.item_schema)
        if shape == _DICT:
            if meta.map_type == "atomic" or not schema:
                return Node("atomic", schema)
            if "properties" in schema:
                return Node("struct", schema)
            if isinstance(schema.get("additionalProperties"), dict):
                return Node("map", schema)
            return Node("atomic", schema)
        return Node("scalar", schema)

    def child_meta(self, parent: dict[str, Any], name: str) -> FieldMeta:
        return self.schemas.patch_meta(parent, name)

    def item_meta(self, item_schema: dict[str, Any]) -> FieldMeta:
        return self.schemas.item_schema_meta(item_schema)

    def root_meta(self, schema: dict[str, Any]) -> FieldMeta:
        return FieldMeta(schema=schema)

    def children(self, meta: FieldMeta, value: Any) -> Iterator[tuple[PathElement, FieldMeta, Any]]:
        """The granular children of a value: (path element, child metadata, child value)."""
        node = self.node(meta, value)
        if node.kind in ("struct", "map"):
            for name, child in value.items():
                yield field_element(name), self.child_meta(node.schema, name), child
        elif node.kind == "list-map":
            for item in value:
                if isinstance(item, dict):
                    yield key_element(item, node.keys), self.item_meta(node.schema), item
        elif node.kind == "list-set":
            for item in value:
                yield value_element(item), FieldMeta(), item

    def applied_fields(self, meta: FieldMeta, value: Any, prefix: FieldPath = ()) -> FieldSet:
        """The fields a configuration sets (structured-merge-diff's ToFieldSet): leaves, atomic values, list
        items (which are members themselves) and empty or null struct fields."""
        out: FieldSet = set()
        node = self.node(meta, value)
        if node.kind in ("scalar", "atomic", "list-atomic"):
            if prefix:
                out.add(prefix)
            return out
        for element, child_meta, child in self.children(meta, value):
            path = (*prefix, element)
            out |= self.applied_fields(child_meta, child, path)
            child_kind = self.node(child_meta, child).kind
            if node.kind in ("list-map", "list-set") or child is None or (
                    isinstance(child, dict) and not child) or (node.kind == "map" and child_kind == "scalar"):
                out.add(path)
        return out

    def all_paths(self, meta: FieldMeta, value: Any, prefix: FieldPath = ()) -> FieldSet:
        """Every node path present in a value (intermediate ones included)."""
        out: FieldSet = {prefix} if prefix else set()
        for element, child_meta, child in self.children(meta, value):
            out |= self.all_paths(child_meta, child, (*prefix, element))
        return out

    def member_nodes(self, meta: FieldMeta, value: Any, prefix: FieldPath = ()) -> FieldSet:
        """Nodes an Update owns as such when it adds them: list items, set items and granular maps."""
        out: FieldSet = set()
        node = self.node(meta, value)
        if prefix and (node.kind == "map" or prefix[-1][:2] in ("k:", "v:")):
            out.add(prefix)
        for element, child_meta, child in self.children(meta, value):
            out |= self.member_nodes(child_meta, child, (*prefix, element))
        return out

    def summary(self, meta: FieldMeta, value: Any) -> FieldSummary:
        """leaf_values, all_paths and member_nodes of a value at once: one walk instead of three."""
        out = FieldSummary()
        self._summarize(meta, value, (), out)
        return out

    def _summarize(self, meta: FieldMeta, value: Any, prefix: FieldPath, out: FieldSummary) -> None:
        node = self.node(meta, value)
        kind = node.kind
        if prefix:
            out.paths.add(prefix)
            if kind == "map" or prefix[-1][:2] in ("k:", "v:"):
                out.members.add(prefix)
        if kind in ("scalar", "atomic", "list-atomic") or (isinstance(value, dict | list) and not value):
            out.leaves[prefix] = value
            return
        if kind in ("struct", "map"):
            patch_meta = self.schemas.patch_meta
            for name, child in value.items():
                self._summarize(patch_meta(node.schema, name), child, (*prefix, f"f:{name}"), out)
        elif kind == "list-map":
            item_meta = self.item_meta(node.schema)
            for item in value:
                if isinstance(item, dict):
                    self._summarize(item_meta, item, (*prefix, key_element(item, node.keys)), out)
        elif kind == "list-set":
            for item in value:
                self._summarize(_NO_META, item, (*prefix, value_element(item)), out)

    def owned_trie(self, meta: FieldMeta, value: Any) -> dict[str, Any]:
        """The FieldsV1 trie of every leaf and member of a value: `to_fields_v1(leaves | members)` of its
        summary, built in the same single walk without the path sets (what a create owns)."""
        return self._owned(meta, value, False, True) or {}

    def _owned(self, meta: FieldMeta, value: Any, member: bool, root: bool) -> dict[str, Any] | None:
        """This value's trie, {} for an owned leaf, None when nothing in it is owned."""
        node = self.node(meta, value)
        kind = node.kind
        # Any other kind holds a dict or a list (node() decides by the value's shape): empty, it is a leaf.
        if kind in _LEAF_KINDS or not value:
            return None if root else {}
        children: dict[str, Any] = {}
        if kind in ("struct", "map"):
            patch_meta = self.schemas.patch_meta
            schema = node.schema
            for name, child in value.items():
                sub = self._owned(patch_meta(schema, name), child, False, False)
                if sub is not None:
                    children[f"f:{name}"] = sub
        elif kind == "list-map":
            item_meta = self.item_meta(node.schema)
            for item in value:
                if isinstance(item, dict):
                    _add_child(children, key_element(item, node.keys), self._owned(item_meta, item, True, False))
        elif kind == "list-set":
            for item in value:
                _add_child(children, value_element(item), self._owned(_NO_META, item, True, False))
        ordered = {name: children[name] for name in sorted(children)}
        if not root and (kind == "map" or member):
            return {".": {}, **ordered} if ordered else {}
        return ordered or None

    def leaf_values(self, meta: FieldMeta, value: Any, prefix: FieldPath = ()) -> dict[FieldPath, Any]:
        """Path -> value for every leaf (scalar, atomic value, set item) and every empty granular value."""
        out: dict[FieldPath, Any] = {}
        node = self.node(meta, value)
        if node.kind in ("scalar", "atomic", "list-atomic") or (isinstance(value, dict | list) and not value):
            out[prefix] = value
            return out
        for element, child_meta, child in self.children(meta, value):
            out.update(self.leaf_values(child_meta, child, (*prefix, element)))
        return out
