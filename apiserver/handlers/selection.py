"""Label and field selectors of list, watch and deletecollection, bound to a resource's selectable fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aiokube.api.errors import bad_request
from aiokube.api.types import Obj
from apiserver.registry import ResourceHandle


class Selector(Protocol):
    def matches(self, values: Mapping[str, str]) -> bool: ...


class _EqualitySelector:
    """Fallback for `k=v,k==v,k!=v,k,!k` until aiokube.api.selectors exists."""

    def __init__(self, text: str) -> None:
        self.terms: list[tuple[str, str, str]] = []
        for raw in filter(None, (t.strip() for t in text.split(","))):
            for op in ("!=", "==", "="):
                if op in raw:
                    key, _, value = raw.partition(op)
                    self.terms.append((key.strip(), "!=" if op == "!=" else "=", value.strip()))
                    break
            else:
                self.terms.append((raw.lstrip("!").strip(), "!" if raw.startswith("!") else "exists", ""))
        self.fields = {key for key, _, _ in self.terms}

    def matches(self, values: Mapping[str, str]) -> bool:
        for key, op, value in self.terms:
            present = key in values
            if (op == "=" and values.get(key) != value) or (op == "!=" and present and values[key] == value):
                return False
            if (op == "exists" and not present) or (op == "!" and present):
                return False
        return True


def _parse(text: str, kind: str) -> Any:
    try:
        from aiokube.api import selectors
    except ImportError:
        return _EqualitySelector(text)
    parse = selectors.parse_label_selector if kind == "label" else selectors.parse_field_selector
    try:
        return parse(text)
    except ValueError as exc:
        raise bad_request(f"unable to parse requirement: {exc}") from None


class Selection:
    """Whether objects of one resource pass a request's labelSelector and fieldSelector."""

    def __init__(self, handle: ResourceHandle, label_selector: str | None, field_selector: str | None) -> None:
        self.handle = handle
        self.labels = _parse(label_selector, "label") if label_selector else None
        self.fields = _parse(field_selector, "field") if field_selector else None
        if self.fields is not None:
            self._check_supported_fields()

    @classmethod
    def from_query(cls, handle: ResourceHandle, query: Mapping[str, str]) -> Selection:
        return cls(handle, query.get("labelSelector"), query.get("fieldSelector"))

    @property
    def everything(self) -> bool:
        return self.labels is None and self.fields is None

    def _check_supported_fields(self) -> None:
        wanted = set(getattr(self.fields, "fields", ()) or ())
        try:
            known = set(self.handle.strategy.selectable_fields({"metadata": {}}))
        except (KeyError, TypeError, AttributeError):
            return  # the strategy needs a real object: unknown fields then simply match nothing
        unknown = sorted(wanted - known)
        if unknown:
            raise bad_request(f'field label not supported: {unknown[0]}')

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.labels is not None and not self.labels.matches(obj.get("metadata", {}).get("labels") or {}):
            return False
        return self.fields is None or bool(self.fields.matches(self.handle.strategy.selectable_fields(obj)))
