"""Strategic merge patch (`application/strategic-merge-patch+json`), as the API server applies it.

Semantics follow apimachinery's strategicpatch with the options the server uses (merge parallel lists, ignore
unmatched nulls); the merge keys and strategies come from the schema (`x-kubernetes-patch-merge-key`,
`x-kubernetes-patch-strategy`), so kubectl's client-side apply and `kubectl set image` get what they expect:

- maps merge recursively; `null` deletes a key; `$patch: replace` replaces a map, `$patch: delete` empties it;
- `$retainKeys: [..]` clears the keys of the original that are not listed (strategy `retainKeys`);
- lists with strategy `merge` merge by merge key (lists of maps) or as a union (primitives); items
  `{"$patch": "delete", <key>: v}` delete, an item `{"$patch": "replace"}` replaces the whole list;
  `$deleteFromPrimitiveList/<field>` removes values; `$setElementOrder/<field>` fixes the order;
- every other list is replaced by the patch's list.

The order of merged lists follows strategicpatch exactly: patch items in `$setElementOrder` (or patch) order,
server-only items in live order, interleaved by their live positions (new items go before the server-only
items they cannot be ordered against).
"""

from __future__ import annotations

import copy
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from apiserver.schema import FieldMeta, SchemaRegistry

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ELEMENT_ORDER = "$setElementOrder/"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"


def _cannot_apply(message: str) -> ApiError:
    return ApiError(422, message, "Invalid")


def strategic_merge_patch(original: Obj, patch: Obj, schema: dict[str, Any], schemas: SchemaRegistry) -> Obj:
    """Apply a strategic merge patch to a copy of `original`; `schema` is the object's definition."""
    if not isinstance(patch, dict):
        raise ApiError(400, "strategic merge patch must be a JSON object", "BadRequest")
    merger = _Merger(schemas)
    return merger.merge_map(copy.deepcopy(original), copy.deepcopy(patch), schemas.resolve(schema))


class _Merger:
    def __init__(self, schemas: SchemaRegistry) -> None:
        self.schemas = schemas

    # maps ----------------------------------------------------------------------------------------------------

    def merge_map(self, original: dict[str, Any] | None, patch: dict[str, Any],
                  schema: dict[str, Any]) -> dict[str, Any]:
        if DIRECTIVE in patch:
            directive = patch.pop(DIRECTIVE)
            if directive == "replace":
                return strip_directives(patch)
            if directive == "delete":
                return {}
            if directive != "merge":
                raise _cannot_apply(f"Unrecognized $patch directive: {directive!r}")
        if original is None:
            original = {}
        self._retain_keys(original, patch)
        self._set_element_orders(original, patch, schema)
        for key, value in patch.items():
            if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
                field_name = key[len(DELETE_FROM_PRIMITIVE_LIST):]
                current = original.get(field_name)
                if isinstance(current, list) and isinstance(value, list):
                    original[field_name] = [item for item in current if item not in value]
                continue
            if key.startswith("$"):
                continue  # directives of another level, or unknown ones that decoding would drop anyway
            if value is None:
                original.pop(key, None)
                continue
            meta = self.schemas.patch_meta(schema, key)
            current = original.get(key)
            if key not in original or current is None:
                original[key] = self._fresh(value, meta)
            elif isinstance(current, dict) and isinstance(value, dict):
                original[key] = (strip_directives(value) if "replace" in meta.strategies
                                 else self.merge_map(current, value, meta.schema))
            elif isinstance(current, list) and isinstance(value, list):
                original[key] = (self.merge_list(current, value, meta) if "merge" in meta.strategies
                                 else strip_directives(value))
            else:
                original[key] = strip_directives(value)
        return original

    def _fresh(self, value: Any, meta: FieldMeta) -> Any:
        """A patch value for a field the original lacks: merged into nothing, so directives disappear."""
        if isinstance(value, dict):
            return self.merge_map({}, value, meta.schema)
        if isinstance(value, list) and "merge" in meta.strategies:
            return self.merge_list([], value, meta)
        return strip_directives(value)

    @staticmethod
    def _retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
        if RETAIN_KEYS not in patch:
            return
        retain = patch.pop(RETAIN_KEYS)
        if not isinstance(retain, list):
            raise _cannot_apply("invalid patch: $retainKeys must be a list")
        keep = set(retain)
        for key, value in patch.items():
            if value is None or key.startswith("$"):
                continue
            if key not in keep:
                raise _cannot_apply(f"invalid patch: field {key!r} is not present in $retainKeys {retain}")
        for key in list(original):
            if key not in keep:
                del original[key]

    def _set_element_orders(self, original: dict[str, Any], patch: dict[str, Any],
                            schema: dict[str, Any]) -> None:
        for directive in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
            order = patch.pop(directive)
            field_name = directive[len(SET_ELEMENT_ORDER):]
            if not isinstance(order, list):
                raise _cannot_apply(f"invalid patch: {directive} must be a list")
            meta = self.schemas.patch_meta(schema, field_name)
            live, patch_list = original.get(field_name), patch.get(field_name)
            has_live = isinstance(live, list)
            if not has_live and not isinstance(patch_list, list):
                continue
            live_list: list[Any] = live if isinstance(live, list) else []
            merged: list[Any]
            if not isinstance(patch_list, list):
                merged = live_list
            elif has_live and "merge" in meta.strategies:
                merged = self.merge_list(live_list, patch_list, meta)
            else:
                merged = self._fresh(patch_list, meta)
            key = meta.merge_key if any(isinstance(x, dict) for x in merged) else None
            if any(isinstance(x, dict) for x in merged) and not key:
                original[field_name] = merged  # maps without a merge key cannot be ordered
            else:
                in_order, server_only = _partition(merged, order, key)
                original[field_name] = _normalize_order(in_order, server_only, order, live_list, key)
            patch.pop(field_name, None)

    # lists ---------------------------------------------------------------------------------------------------

    def merge_list(self, original: list[Any], patch: list[Any], meta: FieldMeta) -> list[Any]:
        if not original and not patch:
            return original
        if not any(isinstance(x, dict) for x in (*original, *patch)):
            merged = _dedupe([*original, *patch])
            in_patch, server_only = _partition(merged, patch, None)
            return _normalize_order(in_patch, server_only, patch, original, None)
        key = meta.merge_key
        if not key:
            raise _cannot_apply("cannot merge lists without merge key")
        original, patch = self._special_elements(original, patch, key)
        merged = list(original)
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise _cannot_apply(f"map: {item} does not contain declared merge key: {key}")
            position = _find(merged, key, item[key])
            if position is None:
                merged.append(self.merge_map({}, item, meta.item_schema))
            else:
                merged[position] = self.merge_map(merged[position], item, meta.item_schema)
        in_patch, server_only = _partition(merged, patch, key)
        return _normalize_order(in_patch, server_only, patch, original, key)

    @staticmethod
    def _special_elements(original: list[Any], patch: list[Any], key: str) -> tuple[list[Any], list[Any]]:
        plain: list[Any] = []
        replace = False
        for item in patch:
            if not isinstance(item, dict) or DIRECTIVE not in item:
                plain.append(item)
                continue
            directive = item[DIRECTIVE]
            if directive == "delete":
                if key not in item:
                    raise _cannot_apply(f"map: {item} does not contain declared merge key: {key}")
                original = [x for x in original if not (isinstance(x, dict) and x.get(key) == item[key])]
            elif directive == "replace":
                replace = True
            elif directive == "merge":
                raise _cannot_apply("merging lists cannot yet be specified in the patch")
            else:
                raise _cannot_apply(f"Unrecognized $patch directive: {directive!r}")
        if replace:
            return [strip_directives(x) for x in plain], []
        return original, plain


# ------------------------------------------------------------------------------------------------ list helpers

def _identity(item: Any, key: str | None) -> Any:
    return item.get(key) if key is not None and isinstance(item, dict) else item


def _index(items: list[Any], item: Any, key: str | None) -> int:
    wanted = _identity(item, key)
    for position, candidate in enumerate(items):
        if _identity(candidate, key) == wanted:
            return position
    return -1


def _find(items: list[Any], key: str, value: Any) -> int | None:
    for position, item in enumerate(items):
        if isinstance(item, dict) and item.get(key) == value:
            return position
    return None


def _dedupe(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _partition(merged: list[Any], by: list[Any], key: str | None) -> tuple[list[Any], list[Any]]:
    """Split merged items into those named in `by` and the server-only rest, keeping their order."""
    wanted = [_identity(x, key) for x in by]
    present = [x for x in merged if _identity(x, key) in wanted]
    rest = [x for x in merged if _identity(x, key) not in wanted]
    return present, rest


def _normalize_order(in_patch: list[Any], server_only: list[Any], patch_order: list[Any],
                     server_order: list[Any], key: str | None) -> list[Any]:
    in_patch = sorted(in_patch, key=lambda x: _index(patch_order, x, key))
    server_only = sorted(server_only, key=lambda x: _index(server_order, x, key))
    # Interleave: a server-only item goes first only when both items have a live position and it is earlier.
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(in_patch):
        if j >= len(in_patch):
            out.append(server_only[i])
            i += 1
        elif i >= len(server_only):
            out.append(in_patch[j])
            j += 1
        else:
            left = _index(server_order, server_only[i], key)
            right = _index(server_order, in_patch[j], key)
            if left >= 0 and right >= 0 and left < right:
                out.append(server_only[i])
                i += 1
            else:
                out.append(in_patch[j])
                j += 1
    return out


def strip_directives(value: Any) -> Any:
    """Drop `$…` directive keys and null map values, as decoding the patched JSON into an object would."""
    if isinstance(value, dict):
        return {k: strip_directives(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [strip_directives(v) for v in value
                if not (isinstance(v, dict) and v.get(DIRECTIVE) == "delete")]
    return value
