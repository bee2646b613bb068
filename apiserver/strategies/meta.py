"""ObjectMeta and label-selector rules shared by every kind (apimachinery ValidateObjectMeta, ValidateLabels,
ValidateLabelSelector), plus selector matching and the selector/label strings kubectl prints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import names
from apiserver.strategies.base import Cause

NameCheck = Callable[[str], list[str]]

# apimachinery's TotalAnnotationSizeLimitB: the sum of annotation keys and values.
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * (1 << 10)


def validate_labels(labels: Any, field: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(labels, dict):
        return causes
    for key, value in labels.items():
        causes.extend(fe.invalid(field, key, msg) for msg in names.qualified_name(str(key)))
        if isinstance(value, str):
            causes.extend(fe.invalid(field, value, msg) for msg in names.label_value(value))
    return causes


def validate_annotations(annotations: Any, field: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(annotations, dict):
        return causes
    total = 0
    for key, value in annotations.items():
        causes.extend(fe.invalid(field, key, msg) for msg in names.qualified_name(str(key).lower()))
        total += len(str(key)) + len(str(value))
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(fe.too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def validate_object_meta(obj: Obj, *, namespaced: bool, name_check: NameCheck,
                         field: str = "metadata") -> list[Cause]:
    """ValidateObjectMeta: name format, namespace presence, labels, annotations."""
    meta = obj.get("metadata") or {}
    causes: list[Cause] = []
    name = meta.get("name") or ""
    if not name:
        if not meta.get("generateName"):
            causes.append(fe.required(f"{field}.name", "name or generateName is required"))
    else:
        causes.extend(fe.invalid(f"{field}.name", name, msg) for msg in name_check(name))
    namespace = meta.get("namespace") or ""
    if namespaced:
        if not namespace:
            causes.append(fe.required(f"{field}.namespace"))
        else:
            causes.extend(fe.invalid(f"{field}.namespace", namespace, msg) for msg in names.dns1123_label(namespace))
    elif namespace:
        causes.append(fe.forbidden(f"{field}.namespace", "not allowed on this type"))
    causes.extend(validate_labels(meta.get("labels"), f"{field}.labels"))
    causes.extend(validate_annotations(meta.get("annotations"), f"{field}.annotations"))
    return causes


def validate_object_meta_update(new: Obj, old: Obj) -> list[Cause]:
    """ValidateObjectMetaUpdate: the identity of an object never changes."""
    new_meta, old_meta = new.get("metadata") or {}, old.get("metadata") or {}
    causes = []
    for key in ("name", "namespace"):
        if (new_meta.get(key) or "") != (old_meta.get(key) or ""):
            causes.append(fe.immutable(f"metadata.{key}", new_meta.get(key) or ""))
    return causes


# --- label selectors ----------------------------------------------------------------------------------------

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(selector: Any, field: str) -> list[Cause]:
    if not isinstance(selector, dict):
        return []
    causes = validate_labels(selector.get("matchLabels"), f"{field}.matchLabels")
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        path = f"{field}.matchExpressions[{i}]"
        operator = expr.get("operator", "")
        values = expr.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                causes.append(fe.required(f"{path}.values",
                                          "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                causes.append(fe.forbidden(f"{path}.values",
                                           "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            causes.append(fe.invalid(f"{path}.operator", operator, "not a valid selector operator"))
        causes.extend(fe.invalid(f"{path}.key", expr.get("key", ""), msg)
                      for msg in names.qualified_name(str(expr.get("key", ""))))
    return causes


def selector_is_empty(selector: Any) -> bool:
    return not selector or (not selector.get("matchLabels") and not selector.get("matchExpressions"))


def selector_matches(selector: Any, labels: dict[str, str] | None) -> bool:
    """metav1.LabelSelectorAsSelector(selector).Matches(labels); a nil selector matches nothing."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, operator, values = expr.get("key", ""), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def selector_string(selector: Any) -> str:
    """labels.Selector.String() of a LabelSelector: requirements sorted by key, "" for none."""
    if not selector:
        return ""
    requirements: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        requirements.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key, operator = expr.get("key", ""), expr.get("operator")
        values = ",".join(sorted(expr.get("values") or []))
        text = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                "DoesNotExist": f"!{key}"}.get(str(operator), key)
        requirements.append((key, text))
    return ",".join(text for _, text in sorted(requirements, key=lambda r: r[0]))


def format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector: like selector_string but "<none>" when empty."""
    return selector_string(selector) or "<none>"


def format_labels(labels: dict[str, str] | None) -> str:
    """labels.FormatLabels: sorted k=v pairs, "<none>" when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def go_label_selector(selector: Any) -> fe.GoLiteral:
    """The %#v-like form Kubernetes prints for an immutable selector in a field error."""
    selector = selector or {}
    match_labels = selector.get("matchLabels")
    labels_text = fe.go_value(match_labels) if match_labels else "map[string]string(nil)"
    exprs = selector.get("matchExpressions")
    exprs_text = "[]v1.LabelSelectorRequirement(nil)" if not exprs else (
        "[]v1.LabelSelectorRequirement{" + ", ".join(
            f'v1.LabelSelectorRequirement{{Key:"{e.get("key", "")}", Operator:"{e.get("operator", "")}", '
            f"Values:{fe.go_value(e.get('values') or [])}}}" for e in exprs) + "}")
    return fe.GoLiteral(f"v1.LabelSelector{{MatchLabels:{labels_text}, MatchExpressions:{exprs_text}}}")
