"""Kubernetes 1.32 object schemas: lookup by GVK, fast validation, unknown-field detection, patch metadata.

The definitions come from the PyPI package kubernetes-validate (the upstream OpenAPI definitions converted to
JSON Schema, one `$defs` entry per Go type, carrying `x-kubernetes-group-version-kind`, the strategic-merge
metadata `x-kubernetes-patch-merge-key`/`-patch-strategy` and the server-side-apply metadata
`x-kubernetes-list-type`/`-list-map-keys`/`-map-type`).

Validation is a tree of small closures compiled once per definition (lazily, on first use) and walked in a
single pass that collects every error *and* every unknown field, so the handler can decide per
`fieldValidation` what to do with unknown fields:

    schemas = SchemaRegistry.load()
    result = schemas.validate("apps", "v1", "Deployment", obj, field_validation="Strict")
    result.errors   # list of metav1.StatusCause dicts -> 422 Invalid
    result.unknown  # [".spec.foo", ...]               -> 400 strict decoding error / Warning headers
    result.prune_unknown(); result.settle_nulls()      # make obj what a typed decode would have kept

The same walk records where JSON nulls sit, because Kubernetes decodes into Go structs: a null field is its zero
value (omitted on output) and a null list item or map value is the zero value of its type (`[null]` of structs
is `[{}]`), so the strategies after validation never meet a None where the schema promises a value.

Causes use Kubernetes field paths (`spec.template.spec.containers[0].image`) and the reasons apimachinery's
field.Error uses (FieldValueTypeInvalid, FieldValueNotSupported, FieldValueRequired, FieldValueInvalid).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import kubernetes_validate

from aiokube.api.types import Obj

KUBERNETES_VERSION = "v1.32.0"
_DEFINITIONS_FILE = (Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
                     / f"{KUBERNETES_VERSION}-local" / "_definitions.json")
_REF_PREFIX = "#/$defs/"

Cause = dict[str, str]
"""A metav1.StatusCause: {"reason": …, "message": …, "field": …}."""

FieldValidation = Literal["Strict", "Warn", "Ignore"]

NullSite = tuple[dict[str, Any] | list[Any], str | int, Callable[[], Any] | None]
"""Where a JSON null sits: its container, its key or index, and the factory of the zero value it stands for
(None: the field is dropped)."""


@dataclass
class ValidationResult:
    """Everything one validation pass found. `ok` ignores unknown fields (the caller decides about those)."""

    errors: list[Cause] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    # (containing object, key) of every unknown field, whatever fieldValidation said, so it can be pruned.
    unknown_sites: list[tuple[dict[str, Any], str]] = field(default_factory=list, repr=False)
    # (containing object or list, key or index, zero-value factory or None to drop) of every null found.
    null_sites: list[NullSite] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not self.errors

    def prune_unknown(self) -> None:
        """Drop the unknown fields from the validated object, in place: Kubernetes decodes into typed structs,
        so fields the schema does not know are never stored (free-form and preserve-unknown subtrees stay)."""
        for container, key in self.unknown_sites:
            container.pop(key, None)

    def settle_nulls(self) -> None:
        """Replace JSON nulls, in place, by what Go's decoder leaves: a null field is dropped (its zero value is
        omitted), a null list item or map value becomes its type's zero value (`{}`, `""`, `0`, …)."""
        for container, key, zero in self.null_sites:
            if isinstance(container, dict) and isinstance(key, str):
                if zero is None:
                    container.pop(key, None)
                else:
                    container[key] = zero()
            elif isinstance(container, list) and isinstance(key, int) and zero is not None:
                container[key] = zero()


@dataclass(frozen=True)
class FieldMeta:
    """Patch metadata of one field of an object schema (see `SchemaRegistry.patch_meta`).

    `schema` is the field's resolved schema ({} when the field is unknown: no strategy, lists replaced) and
    `item_schema` the resolved schema of its list items or map values.
    """

    merge_key: str | None = None
    strategies: frozenset[str] = frozenset()
    list_type: str | None = None
    list_map_keys: tuple[str, ...] = ()
    map_type: str | None = None
    schema: dict[str, Any] = field(default_factory=dict)
    item_schema: dict[str, Any] = field(default_factory=dict)
    # What apiserver.patch.fieldpath.SchemaWalker.node decided for this field, by the shape of the value (a
    # pure function of the fields above, remembered: every managedFields walk asks it at every node).
    nodes: dict[int, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __iter__(self) -> Any:
        # Lets callers unpack the documented 4-tuple: merge_key, strategies, list_type, list_map_keys.
        return iter((self.merge_key, set(self.strategies), self.list_type, list(self.list_map_keys)))


def unknown_fields_message(paths: Iterable[str], *, kind: str | None = None, version: str | None = None) -> str:
    """The 400 message of fieldValidation=Strict, exactly as Kubernetes words it.

    `unknown_fields_message([".spec.foo"])` -> `strict decoding error: unknown field "spec.foo"`; with kind and
    version the decoder's prefix is added: `Deployment in version "v1" cannot be handled as a Deployment: …`.
    """
    body = "strict decoding error: " + ", ".join(unknown_field_warning(p) for p in paths)
    if kind and version:
        return f'{kind} in version "{version}" cannot be handled as a {kind}: {body}'
    return body


def unknown_field_warning(path: str) -> str:
    """One `Warning` header text for fieldValidation=Warn: `unknown field "spec.foo"`."""
    return f'unknown field "{path.lstrip(".")}"'


def find_duplicate_fields(body: bytes | str) -> list[str]:
    """Paths of JSON object keys that occur twice in a request body (Kubernetes reports them like unknown
    fields: `duplicate field "replicas"`). Returns [] for bodies that are not JSON."""
    duplicates: list[str] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                duplicates.append(key)
            seen.add(key)
        return dict(pairs)

    try:
        json.loads(body, object_pairs_hook=hook)
    except ValueError:
        return []
    return duplicates


# --------------------------------------------------------------------------------------------------- compiler

Validator = Callable[[Any, str, "_Context"], None]
"""Checks one value found at a path (Kubernetes form, "" at the root) and records findings in the context."""


class _Context:
    __slots__ = ("errors", "null_sites", "unknown", "unknown_sites")

    def __init__(self) -> None:
        self.errors: list[Cause] = []
        self.unknown: list[str] = []
        self.unknown_sites: list[tuple[dict[str, Any], str]] = []
        self.null_sites: list[NullSite] = []


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _show(value: Any) -> str:
    """Render a value the way field.Error does in messages (strings quoted, others as JSON)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))[:80]
    return json.dumps(value)


_JSON_TYPE_NAMES = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array",
                    dict: "object", type(None): "null"}


def _type_matches(value: Any, json_type: str) -> bool:
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "integer":
        # bool is an int subclass in Python but never a JSON integer; 3.0 is accepted as Go's decoder does.
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if json_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "object":
        return isinstance(value, dict)
    if json_type == "array":
        return isinstance(value, list)
    if json_type == "null":
        return value is None
    return True


# Single-type tests equal to _type_matches(value, name), for the type names with a cheaper direct form.
_SINGLE_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: type(value) is str or isinstance(value, str),
    "object": lambda value: type(value) is dict or isinstance(value, dict),
    "array": lambda value: type(value) is list or isinstance(value, list),
    "boolean": lambda value: isinstance(value, bool),
}


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _format_error(value: Any, fmt: str) -> str | None:
    if fmt in _INT_RANGES and isinstance(value, int | float) and not isinstance(value, bool):
        low, high = _INT_RANGES[fmt]
        if not low <= value <= high:
            return f"must be a valid {fmt} value"
    elif fmt == "date-time" and isinstance(value, str) and value and not _RFC3339.match(value):
        return "must be a RFC3339 date-time (e.g. 2006-01-02T15:04:05Z)"
    elif fmt == "byte" and isinstance(value, str):
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return "must be base64-encoded data"
    return None


class _Compiler:
    """Compiles JSON Schema nodes of the definitions into validator closures, one per definition, lazily."""

    def __init__(self, definitions: dict[str, dict[str, Any]]) -> None:
        self._definitions = definitions
        self._compiled: dict[str, Validator] = {}

    def definition(self, name: str) -> Validator:
        compiled = self._compiled.get(name)
        if compiled is None:
            # Placeholder first: definitions are recursive (JSONSchemaProps, …).
            def deferred(value: Any, path: str, ctx: _Context, _name: str = name) -> None:
                self._compiled[_name](value, path, ctx)

            self._compiled[name] = deferred
            compiled = self.node(self._definitions[name])
            self._compiled[name] = compiled
        return compiled

    def node(self, schema: dict[str, Any]) -> Validator:
        ref = schema.get("$ref")
        if ref:
            return self._reference(ref.removeprefix(_REF_PREFIX))
        checks: list[Validator] = []
        if "oneOf" in schema or "anyOf" in schema:
            checks.append(self._one_of([self.node(s) for s in schema.get("oneOf") or schema.get("anyOf", [])]))
        for sub in schema.get("allOf", ()):
            checks.append(self.node(sub))
        types = schema.get("type")
        if types is not None:
            checks.append(self._type_check([types] if isinstance(types, str) else list(types)))
        if "enum" in schema:
            checks.append(self._enum_check(schema["enum"]))
        if "format" in schema:
            checks.append(self._format_check(schema["format"]))
        if "properties" in schema or "additionalProperties" in schema or "required" in schema:
            checks.append(self._object_check(schema))
        if "items" in schema:
            checks.append(self._array_check(self.node(schema["items"]), self.zero_factory(schema["items"])))
        if not checks:
            return _accept_anything
        if len(checks) == 1:
            return checks[0]

        def all_checks(value: Any, path: str, ctx: _Context) -> None:
            before = len(ctx.errors)
            for check in checks:
                check(value, path, ctx)
                # A type error makes the remaining checks noise (an enum error on a number, …).
                if len(ctx.errors) != before:
                    return

        return all_checks

    def _reference(self, target: str) -> Validator:
        # Resolved on first call (the target may still be compiling), then called directly.
        resolved: list[Validator] = []

        def check(value: Any, path: str, ctx: _Context) -> None:
            if not resolved:
                resolved.append(self.definition(target))
            resolved[0](value, path, ctx)
        return check

    @staticmethod
    def _one_of(alternatives: list[Validator]) -> Validator:
        # IntOrString and Quantity: the value must satisfy one alternative; report the first one's errors.
        def check(value: Any, path: str, ctx: _Context) -> None:
            first: _Context | None = None
            for alternative in alternatives:
                trial = _Context()
                alternative(value, path, trial)
                if not trial.errors:
                    ctx.unknown.extend(trial.unknown)
                    ctx.unknown_sites.extend(trial.unknown_sites)
                    ctx.null_sites.extend(trial.null_sites)
                    return
                first = first or trial
            if first is not None:
                ctx.errors.append({"reason": "FieldValueTypeInvalid", "field": path,
                                   "message": f"Invalid value: {_show(value)}: {path or 'body'} in body must be "
                                              f"of type int-or-string: {_show(value)}"})
        return check

    @staticmethod
    def _type_check(types: list[str]) -> Validator:
        wanted = [t for t in types if t != "null"]
        nullable = "null" in types
        shown = wanted[0] if len(wanted) == 1 else "/".join(wanted)

        # Most schemas name one type: test it directly rather than through any() over a generator (this runs
        # for every field of every write).
        single = _SINGLE_TYPE_TESTS.get(wanted[0]) if len(wanted) == 1 else None

        def check(value: Any, path: str, ctx: _Context) -> None:
            if value is None and nullable:
                return
            if single is not None:
                if single(value):
                    return
            elif any(_type_matches(value, t) for t in wanted):
                return
            ctx.errors.append({"reason": "FieldValueTypeInvalid", "field": path,
                               "message": f"Invalid value: {_show(value)}: {path or 'body'} in body must be of "
                                          f"type {shown}: \"{_JSON_TYPE_NAMES.get(type(value), 'value')}\""})
        return check

    @staticmethod
    def _enum_check(allowed: list[Any]) -> Validator:
        allowed_set = {json.dumps(a) for a in allowed if a is not None}
        supported = ", ".join(_show(a) for a in allowed if a is not None)

        # Strings (nearly every enum) are compared as they are; other values by their JSON text, so 1, 1.0 and
        # true stay distinct as in JSON.
        allowed_strings = frozenset(a for a in allowed if isinstance(a, str))

        def check(value: Any, path: str, ctx: _Context) -> None:
            if value is None or (value in allowed_strings if type(value) is str
                                 else json.dumps(value) in allowed_set):
                return
            ctx.errors.append({"reason": "FieldValueNotSupported", "field": path,
                               "message": f"Unsupported value: {_show(value)}: supported values: {supported}"})
        return check

    @staticmethod
    def _format_check(fmt: str) -> Validator:
        def check(value: Any, path: str, ctx: _Context) -> None:
            problem = _format_error(value, fmt)
            if problem:
                ctx.errors.append({"reason": "FieldValueInvalid", "field": path,
                                   "message": f"Invalid value: {_show(value)}: {problem}"})
        return check

    def _object_check(self, schema: dict[str, Any]) -> Validator:
        properties = {name: self.node(sub) for name, sub in schema.get("properties", {}).items()}
        additional = schema.get("additionalProperties")
        additional_check = self.node(additional) if isinstance(additional, dict) else None
        value_zero = self.zero_factory(additional) if isinstance(additional, dict) else None
        # An object schema with neither properties nor a value schema is free-form (RawExtension, FieldsV1).
        open_object = (not properties and additional is None) or additional is True or bool(
            schema.get("x-kubernetes-preserve-unknown-fields"))
        required = tuple(schema.get("required", ()))

        def check(value: Any, path: str, ctx: _Context) -> None:
            if not isinstance(value, dict):
                return
            for name in required:
                if value.get(name) is None:
                    ctx.errors.append({"reason": "FieldValueRequired", "field": _join(path, name),
                                       "message": "Required value"})
            for name, item in value.items():
                sub = properties.get(name)
                if sub is not None:
                    if item is None:
                        ctx.null_sites.append((value, name, None))
                    else:
                        sub(item, _join(path, name), ctx)
                elif additional_check is not None:
                    if item is None:
                        if value_zero is not None:
                            ctx.null_sites.append((value, name, value_zero))
                    else:
                        additional_check(item, f"{path}[{name}]", ctx)
                elif not open_object:
                    ctx.unknown.append("." + _join(path, name))
                    ctx.unknown_sites.append((value, name))
        return check

    def zero_factory(self, schema: dict[str, Any]) -> Callable[[], Any] | None:
        """The Go zero value of a list item or map value schema, as a factory (a fresh `{}` per use); None
        when the schema names no single type (int-or-string, free-form): such nulls are left alone."""
        seen = 0
        while "$ref" in schema and seen < 16:
            schema = self._definitions.get(schema["$ref"].removeprefix(_REF_PREFIX), {})
            seen += 1
        types = schema.get("type")
        wanted = [t for t in ([types] if isinstance(types, str) else types or []) if t != "null"]
        return _ZERO_VALUES.get(wanted[0]) if len(wanted) == 1 else None

    @staticmethod
    def _array_check(item_check: Validator, item_zero: Callable[[], Any] | None) -> Validator:
        def check(value: Any, path: str, ctx: _Context) -> None:
            if isinstance(value, list):
                for index, item in enumerate(value):
                    if item is None:
                        if item_zero is not None:
                            ctx.null_sites.append((value, index, item_zero))
                    else:
                        item_check(item, f"{path}[{index}]", ctx)
        return check


_ZERO_VALUES: dict[str, Callable[[], Any]] = {"object": dict, "array": list, "string": str, "integer": int,
                                              "number": int, "boolean": bool}


def _accept_anything(value: Any, path: str, ctx: _Context) -> None:
    return None


# --------------------------------------------------------------------------------------------------- registry

class SchemaRegistry:
    """The Kubernetes definitions of one version, indexed by name and by group/version/kind."""

    def __init__(self, definitions: dict[str, dict[str, Any]]) -> None:
        self.definitions = definitions
        self._by_gvk: dict[tuple[str, str, str], str] = {}
        for name, definition in definitions.items():
            for gvk in definition.get("x-kubernetes-group-version-kind", ()):
                # Shared types (DeleteOptions, WatchEvent) list many GVKs; the first definition claiming one wins.
                self._by_gvk.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
        self._compiler = _Compiler(definitions)
        # Patch metadata is asked for once per field of every object written (managedFields, patches): cached
        # per (schema node, field). Keys are ids of the definitions' own dicts, which live as long as this
        # registry and are never mutated, so an id always names the same schema; `_schema_ids` tells those
        # apart from transient dicts a caller may pass, which are never cached.
        self._schema_ids: set[int] | None = None
        self._patch_meta_cache: dict[tuple[int, str], FieldMeta] = {}
        self._meta_cache: dict[int, FieldMeta] = {}

    @classmethod
    @cache
    def load(cls) -> SchemaRegistry:
        """The registry of the bundled Kubernetes version; parsed once per process (~0.1 s)."""
        with _DEFINITIONS_FILE.open("rb") as f:
            return cls(json.load(f)["$defs"])

    # lookup ------------------------------------------------------------------------------------------------

    def definition_name_for(self, group: str, version: str, kind: str) -> str | None:
        """The definition name of a GVK, e.g. `io.k8s.api.apps.v1.Deployment`."""
        return self._by_gvk.get((group, version, kind))

    def definition_for(self, group: str, version: str, kind: str) -> dict[str, Any] | None:
        name = self.definition_name_for(group, version, kind)
        return self.definitions[name] if name else None

    def resolve(self, schema: dict[str, Any] | str | None) -> dict[str, Any]:
        """Follow `$ref`s (or a definition name) to the schema that has the content; {} for unknown."""
        if schema is None:
            return {}
        if isinstance(schema, str):
            return self.definitions.get(schema.removeprefix(_REF_PREFIX), {})
        seen = 0
        while "$ref" in schema and seen < 16:
            schema = self.definitions.get(schema["$ref"].removeprefix(_REF_PREFIX), {})
            seen += 1
        return schema

    def patch_meta(self, definition_or_ref: dict[str, Any] | str | None, field_name: str) -> FieldMeta:
        """Merge key, patch strategies, list type/map keys and sub-schemas of `field_name` in an object schema.

        The extension keys may sit next to a `$ref` (e.g. DeploymentSpec.strategy: retainKeys), so they are
        read from the property itself before the reference is followed.
        """
        parent = self.resolve(definition_or_ref)
        key = (id(parent), field_name)
        cached = self._patch_meta_cache.get(key)
        if cached is not None:
            return cached
        meta = self._uncached_patch_meta(parent, field_name)
        if self._is_schema(parent):
            self._patch_meta_cache[key] = meta
        return meta

    def _uncached_patch_meta(self, parent: dict[str, Any], field_name: str) -> FieldMeta:
        prop = parent.get("properties", {}).get(field_name)
        if prop is None:
            additional = parent.get("additionalProperties")
            prop = additional if isinstance(additional, dict) else None
        if prop is None:
            return FieldMeta()
        return self._meta_of(prop)

    def item_meta(self, list_schema: dict[str, Any]) -> FieldMeta:
        """The metadata of a list schema's items (for nested lists and map values)."""
        return self._meta_of(list_schema.get("items") or {})

    def item_schema_meta(self, item_schema: dict[str, Any]) -> FieldMeta:
        """The bare metadata (only `schema`) of a list item or map value schema, cached like patch_meta."""
        cached = self._meta_cache.get(id(item_schema))
        if cached is not None:
            return cached
        meta = FieldMeta(schema=self.resolve(item_schema))
        if self._is_schema(item_schema):
            self._meta_cache[id(item_schema)] = meta
        return meta

    def _is_schema(self, node: dict[str, Any]) -> bool:
        """Whether `node` is one of the definitions' own dicts (safe to cache by id)."""
        if self._schema_ids is None:
            ids: set[int] = set()
            pending: list[Any] = [self.definitions]
            while pending:
                value = pending.pop()
                if isinstance(value, dict):
                    ids.add(id(value))
                    pending.extend(value.values())
                elif isinstance(value, list):
                    pending.extend(value)
            self._schema_ids = ids
        return id(node) in self._schema_ids

    def _meta_of(self, prop: dict[str, Any]) -> FieldMeta:
        resolved = self.resolve(prop)
        strategy = prop.get("x-kubernetes-patch-strategy") or resolved.get("x-kubernetes-patch-strategy") or ""
        items = resolved.get("items")
        if items is None and isinstance(resolved.get("additionalProperties"), dict):
            items = resolved["additionalProperties"]
        return FieldMeta(
            merge_key=prop.get("x-kubernetes-patch-merge-key") or resolved.get("x-kubernetes-patch-merge-key"),
            strategies=frozenset(s for s in strategy.split(",") if s),
            list_type=prop.get("x-kubernetes-list-type") or resolved.get("x-kubernetes-list-type"),
            list_map_keys=tuple(prop.get("x-kubernetes-list-map-keys")
                                or resolved.get("x-kubernetes-list-map-keys") or ()),
            map_type=prop.get("x-kubernetes-map-type") or resolved.get("x-kubernetes-map-type"),
            schema=resolved,
            item_schema=self.resolve(items) if items else {},
        )

    # validation --------------------------------------------------------------------------------------------

    def validate(self, group: str, version: str, kind: str, obj: Obj,
                 field_validation: FieldValidation | str = "Strict") -> ValidationResult:
        """Type, enum, format and required-field errors of `obj`, plus its unknown fields.

        Unknown fields are collected unless field_validation is "Ignore"; a GVK without a schema validates
        nothing (it is the caller's job to refuse kinds it does not serve).
        """
        name = self.definition_name_for(group, version, kind)
        if name is None:
            return ValidationResult()
        ctx = _Context()
        self._compiler.definition(name)(obj, "", ctx)
        return ValidationResult(errors=ctx.errors, unknown=[] if field_validation == "Ignore" else ctx.unknown,
                                unknown_sites=ctx.unknown_sites, null_sites=ctx.null_sites)

    def validate_definition(self, name: str, value: Any, path: str = "") -> ValidationResult:
        """Validate a value against a named definition (e.g. a Scale or DeleteOptions body)."""
        ctx = _Context()
        self._compiler.definition(name)(value, path, ctx)
        return ValidationResult(errors=ctx.errors, unknown=ctx.unknown, unknown_sites=ctx.unknown_sites,
                                null_sites=ctx.null_sites)
