"""Server-side apply (`application/apply-patch+yaml`): merge an applied configuration into the live object.

Semantics (structured-merge-diff, as Kubernetes 1.32 applies them):
- the applied configuration's fields become owned by `manager` (its Apply entry in managedFields holds
  exactly the fields of the last configuration it applied);
- merging follows the schema: structs and granular maps merge per field, associative lists
  (`x-kubernetes-list-type: map`, e.g. containers by name) per key, sets per value, atomic lists and scalars
  are replaced;
- a field the configuration would change that another manager owns is a conflict (409, one cause per field)
  unless `force`, which moves the ownership; equal values are shared, never conflicts;
- fields the manager applied before and no longer applies are removed from the object unless another manager
  still owns them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from apiserver.patch.fieldpath import FieldPath, SchemaWalker, key_element, path_string
from apiserver.patch.managed_fields import (
    ManagerEntry,
    ObjectFields,
    decode_entries,
    encode_entries,
    utc_now,
    without_managed_fields,
)
from apiserver.schema import FieldMeta, SchemaRegistry


def server_side_apply(live: Obj | None, applied: Obj, *, manager: str, force: bool, group: str, version: str,
                      kind: str, schemas: SchemaRegistry, now: str | float | None = None) -> Obj:
    """The object that results from `manager` applying `applied` onto `live` (None: the object is new)."""
    api_version = f"{group}/{version}" if group else version
    _check_config(applied, api_version, kind)
    if not manager:
        raise ApiError(400, "PATCH, application/apply-patch+yaml requires fieldManager to be set", "BadRequest")
    root = FieldMeta(schema=schemas.definition_for(group, version, kind) or {})
    walker = SchemaWalker(schemas)
    fields = ObjectFields(schemas, api_version, kind)
    config = without_managed_fields(applied)
    base = without_managed_fields(live)
    entries = decode_entries(live)

    merged = _merge(walker, root, base, config)
    applied_set = fields.applied(config)
    mine = next((e for e in entries if e.same_owner(manager, "Apply", None, "")), None)
    previous = mine.fields if mine else set()

    live_leaves = fields.leaves(base) if live else {}
    merged_leaves = fields.leaves(merged)
    changed = {p for p in applied_set if p in live_leaves and merged_leaves.get(p) != live_leaves[p]}
    conflicts = [(entry, path) for entry in entries if entry is not mine
                 for path in sorted(changed & entry.fields)]
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for entry, path in conflicts:
        entry.fields.discard(path)

    others = [e for e in entries if e is not mine]
    owned_by_others = set().union(*(e.fields for e in others)) if others else set()
    # Shortest first: removing a list item removes its fields too (its key fields cannot go first).
    for path in sorted(previous - applied_set - owned_by_others, key=lambda p: (len(p), p)):
        _remove(merged, path, owned_by_others | applied_set)

    if mine is None:
        mine = ManagerEntry(manager, "Apply", api_version, "", set())
        entries.append(mine)
    mine.fields = set(applied_set)
    mine.api_version = api_version
    mine.time = utc_now(now)
    present = fields.all_paths(merged)
    for entry in entries:
        entry.fields = {p for p in entry.fields if p in present}
    encode_entries(merged, entries)
    return merged


def _check_config(applied: Any, api_version: str, kind: str) -> None:
    if not isinstance(applied, dict):
        raise ApiError(400, "error decoding YAML: the applied configuration must be an object", "BadRequest")
    missing = [f for f in ("apiVersion", "kind") if not applied.get(f)]
    if missing:
        raise ApiError(400, f"{missing[0]} must not be empty", "BadRequest")
    if applied["apiVersion"] != api_version or applied["kind"] != kind:
        raise ApiError(400, f"the API version in the data ({applied['apiVersion']}) does not match the expected "
                            f"API version ({api_version})" if applied["apiVersion"] != api_version else
                       f"the kind in the data ({applied['kind']}) does not match the expected kind ({kind})",
                       "BadRequest")


def _conflict_error(conflicts: list[tuple[ManagerEntry, FieldPath]]) -> ApiError:
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {entry.display()}",
               "field": path_string(path)} for entry, path in conflicts]
    count = len(conflicts)
    if count == 1:
        entry, path = conflicts[0]
        detail = f"conflict with {entry.display()}: {path_string(path)}"
    else:
        by_manager: dict[str, list[str]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(entry.display(), []).append(path_string(path))
        if len(by_manager) == 1:
            ((who, paths),) = by_manager.items()
            detail = f"conflicts with {who}:" + "".join(f"\n- {p}" for p in paths)
        else:
            detail = "conflicts with" + "".join(
                f"\n{who}:" + "".join(f"\n- {p}" for p in paths) for who, paths in by_manager.items())
    return ApiError(409, f"Apply failed with {count} conflict{'s' if count > 1 else ''}: {detail}", "Conflict",
                    {"causes": causes})


def _merge(walker: SchemaWalker, meta: FieldMeta, live: Any, config: Any) -> Any:
    """Merge a configuration value into a live value per schema; returns a new value."""
    node = walker.node(meta, config)
    if node.kind in ("struct", "map"):
        out: dict[str, Any] = copy.deepcopy(live) if isinstance(live, dict) else {}
        for name, value in config.items():
            if value is None:
                out.pop(name, None)
                continue
            out[name] = _merge(walker, walker.child_meta(node.schema, name), out.get(name), value)
        return out
    if node.kind == "list-map" and isinstance(live, list):
        items = copy.deepcopy(live)
        item_meta = walker.item_meta(node.schema)
        for item in config:
            if not isinstance(item, dict):
                continue
            key = key_element(item, node.keys)
            position = next((i for i, x in enumerate(items)
                             if isinstance(x, dict) and key_element(x, node.keys) == key), None)
            if position is None:
                items.append(copy.deepcopy(item))
            else:
                items[position] = _merge(walker, item_meta, items[position], item)
        return items
    if node.kind == "list-set" and isinstance(live, list):
        return copy.deepcopy(live) + [copy.deepcopy(x) for x in config if x not in live]
    return copy.deepcopy(config)


def _remove(obj: Obj, path: FieldPath, still_owned: set[FieldPath]) -> None:
    """Delete the value at `path`, then parents it leaves empty that nobody owns."""
    trail: list[tuple[Any, Any]] = []  # (container, key or index) for each step
    node: Any = obj
    for element in path:
        step = _locate(node, element)
        if step is None:
            return
        trail.append((node, step))
        node = node[step]
    for depth in range(len(trail) - 1, -1, -1):
        container, step = trail[depth]
        if depth < len(trail) - 1:
            value = container[step]
            prefix = path[:depth + 1]
            if value or any(p[:len(prefix)] == prefix for p in still_owned):
                return
        del container[step]


def _locate(node: Any, element: str) -> Any:
    if isinstance(node, dict) and element.startswith("f:"):
        name = element[2:]
        return name if name in node else None
    if isinstance(node, list):
        for index, item in enumerate(node):
            if element.startswith("k:") and isinstance(item, dict):
                keys = json.loads(element[2:])
                if all(item.get(k) == v for k, v in keys.items()):
                    return index
            elif element.startswith("v:"):
                if json.loads(element[2:]) == item:
                    return index
    return None

