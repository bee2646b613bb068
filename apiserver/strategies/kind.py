"""`KindStrategy`: the Strategy every per-kind module builds on.

It adds what Kubernetes checks for all objects (ValidateObjectMeta with the kind's name format, identity
immutability on update) and a few helpers; subclasses add their own rules with `validate_kind` /
`validate_kind_update`, so no kind can forget the generic ones.
"""

from __future__ import annotations

from typing import Any, ClassVar

from aiokube.api.types import Obj
from apiserver.strategies import meta, names
from apiserver.strategies.base import Cause, Strategy
from apiserver.strategies.columns import Column, age_cell, name_column


class KindStrategy(Strategy):
    # Columns after NAME (and their cells in `cells`); AGE is included where Kubernetes prints it.
    columns: ClassVar[list[Column]] = []

    def validate(self, obj: Obj) -> list[Cause]:
        causes = meta.validate_object_meta(obj, namespaced=self.info.namespaced, name_check=self.check_name)
        return causes + self.validate_kind(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return meta.validate_object_meta_update(new, old) + self.validate_kind_update(new, old)

    def check_name(self, name: str) -> list[str]:
        """The format of metadata.name; most kinds want a DNS-1123 subdomain."""
        return names.dns1123_subdomain(name)

    def validate_kind(self, obj: Obj) -> list[Cause]:
        return []

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        return []

    # --- tables ----------------------------------------------------------------------------------------------
    def table_columns(self) -> list[dict[str, Any]]:
        if not self.columns:
            return super().table_columns()
        return [c.definition() for c in [name_column(), *self.columns]]

    def table_row(self, obj: Obj, now: float) -> list[Any]:
        if not self.columns:
            return super().table_row(obj, now)
        return [obj.get("metadata", {}).get("name", ""), *self.cells(obj, now)]

    def cells(self, obj: Obj, now: float) -> list[Any]:
        """The cells after NAME, in the order of `columns`."""
        return [age_cell(obj, now)]
