"""Label selectors: metav1.LabelSelector (matchLabels + matchExpressions) and map selectors (Services).

Semantics as apimachinery's LabelSelectorAsSelector: an empty selector `{}` matches everything, a missing
(None) selector matches nothing.
"""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    """Whether `labels` satisfy a metav1.LabelSelector."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # an unknown operator selects nothing rather than everything
    return True


def map_selector_matches(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    """A Service-style `{key: value}` selector; an empty or missing one selects nothing."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def labels_of(obj: Obj) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})
