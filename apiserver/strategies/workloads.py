"""Rules shared by the workload controllers' kinds (apps/v1 and batch/v1): int-or-percent values, rolling-update
parameters, the wide CONTAINERS/IMAGES cells, and the immutable-selector check."""

from __future__ import annotations

import re
from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import meta
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import container_cells

_PERCENT = re.compile(r"^([0-9]+)%$")


def int_or_percent_value(value: Any) -> tuple[int, bool] | None:
    """(amount, is_percent) of an IntOrString like 1 or "25%"; None when malformed."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, False
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if match:
            return int(match.group(1)), True
        if value.isdigit():
            return int(value), False
    return None


def validate_int_or_percent(value: Any, field: str) -> list[Cause]:
    """ValidatePositiveIntOrPercent plus IsNotMoreThan100Percent."""
    if value is None:
        return []
    parsed = int_or_percent_value(value)
    if parsed is None:
        return [fe.invalid(field, value, "a valid percent string must be a numeric string followed by an ending '%' "
                                         "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")]
    amount, is_percent = parsed
    if amount < 0:
        return [fe.invalid(field, value, "must be greater than or equal to 0")]
    if is_percent and amount > 100:
        return [fe.invalid(field, value, "must not be greater than 100%")]
    return []


def _is_zero(value: Any) -> bool:
    parsed = int_or_percent_value(value)
    return parsed is not None and parsed[0] == 0


def validate_rolling_update(rolling: Obj, field: str, *, surge_default: Any) -> list[Cause]:
    """maxUnavailable and maxSurge well-formed and not both zero."""
    unavailable = rolling.get("maxUnavailable")
    surge = rolling.get("maxSurge", surge_default)
    causes = validate_int_or_percent(unavailable, f"{field}.maxUnavailable")
    causes += validate_int_or_percent(surge, f"{field}.maxSurge")
    if _is_zero(surge) and _is_zero(unavailable):
        causes.append(fe.invalid(f"{field}.maxUnavailable", unavailable, "may not be 0 when `maxSurge` is 0"))
    return causes


def validate_selector_unchanged(new: Obj, old: Obj, field: str = "spec.selector") -> list[Cause]:
    new_selector = (new.get("spec") or {}).get("selector")
    old_selector = (old.get("spec") or {}).get("selector")
    if new_selector != old_selector:
        return [fe.immutable(field, meta.go_label_selector(new_selector))]
    return []


def template_containers(template: Obj | None) -> tuple[str, str]:
    return container_cells(((template or {}).get("spec") or {}).get("containers"))


def replicas_of(spec: Obj) -> int:
    value = spec.get("replicas")
    return int(value) if value is not None else 0
