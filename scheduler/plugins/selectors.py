"""Label selectors, node selector terms and tolerations: the matching rules plugins share."""

from __future__ import annotations

from aiokube.api.types import Obj


def _requirement_matches(operator: str, key: str, values: list[str], labels: dict[str, str]) -> bool:
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        # Both sides must parse as integers; anything else never matches (Kubernetes' rule).
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, IndexError, ValueError):
            return False
        return have > want if operator == "Gt" else have < want
    return False


def label_selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics; a missing selector matches nothing, an empty one everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        if not _requirement_matches(expr["operator"], expr["key"], expr.get("values") or [], labels):
            return False
    return True


def node_selector_term_matches(term: Obj, node: Obj) -> bool:
    """One NodeSelectorTerm: all its expressions and fields must match; an empty term matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = (node.get("metadata") or {}).get("labels") or {}
    for expr in expressions:
        if not _requirement_matches(expr["operator"], expr["key"], expr.get("values") or [], labels):
            return False
    node_fields = {"metadata.name": node["metadata"]["name"]}
    for expr in fields:
        if not _requirement_matches(expr["operator"], expr["key"], expr.get("values") or [], node_fields):
            return False
    return True


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """corev1.Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(taints: list[Obj], tolerations: list[Obj], effects: tuple[str, ...]) -> Obj | None:
    for taint in taints:
        if taint.get("effect") not in effects:
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None
