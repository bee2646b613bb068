"""Rules shared by Secrets and ConfigMaps: key formats, the 1 MiB size limit, and `immutable: true`."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import names
from apiserver.strategies.base import Cause

# etcd's request size keeps a Secret/ConfigMap under 1 MiB of payload (Kubernetes' MaxSecretSize).
MAX_DATA_SIZE = 1024 * 1024
IMMUTABLE_DETAIL = "field is immutable when `immutable` is set"


def validate_keys(data: Any, field: str) -> list[Cause]:
    causes: list[Cause] = []
    for key in (data or {}):
        causes += [fe.invalid(f"{field}[{key}]", key, msg) for msg in names.config_map_key(str(key))]
    return causes


def validate_immutable_update(new: Obj, old: Obj, fields: tuple[str, ...]) -> list[Cause]:
    """An object created with immutable=true keeps its data (and stays immutable) for life."""
    if not old.get("immutable"):
        return []
    causes: list[Cause] = []
    if not new.get("immutable"):
        causes.append(fe.forbidden("immutable", IMMUTABLE_DETAIL))
    for field in fields:
        if (new.get(field) or {}) != (old.get(field) or {}):
            causes.append(fe.forbidden(field, IMMUTABLE_DETAIL))
    return causes
