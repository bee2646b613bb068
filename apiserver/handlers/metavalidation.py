"""ObjectMeta rules every kind shares and that the handlers enforce for all of them (apimachinery's
ValidateOwnerReferences and ValidateFinalizers), whatever each kind's Strategy validates on top."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import names
from apiserver.strategies.base import Cause


def validate_owner_references(refs: Any, field: str = "metadata.ownerReferences") -> list[Cause]:
    """Each reference names its owner fully; at most one of them is the controller."""
    if not isinstance(refs, list):
        return []
    causes: list[Cause] = []
    controller: str | None = None
    for ref in refs:
        if not isinstance(ref, dict):
            continue
        api_version = str(ref.get("apiVersion") or "")
        if not api_version.rsplit("/", 1)[-1]:
            causes.append(fe.invalid(f"{field}.apiVersion", api_version, "version must not be empty"))
        for key in ("kind", "name", "uid"):
            if not ref.get(key):
                causes.append(fe.invalid(f"{field}.{key}", str(ref.get(key) or ""), f"{key} must not be empty"))
        if ref.get("controller") is True:
            this = f"{ref.get('kind', '')}/{ref.get('name', '')}"
            if controller is not None:
                causes.append(fe.invalid(field, fe.OMIT, f'Only one reference can have Controller set to true. '
                                                         f'Found "true" in references for {controller} and {this}'))
            controller = controller or this
    return causes


def validate_finalizers(finalizers: Any, field: str = "metadata.finalizers") -> list[Cause]:
    """Finalizer names are qualified names (`example.com/cleanup`, or a bare standard one)."""
    if not isinstance(finalizers, list):
        return []
    return [fe.invalid(field, name, message) for name in finalizers if isinstance(name, str)
            for message in names.qualified_name(name)]


def validate_shared_meta(obj: Obj) -> list[Cause]:
    meta = obj.get("metadata") or {}
    return validate_owner_references(meta.get("ownerReferences")) + validate_finalizers(meta.get("finalizers"))
