"""RBAC kinds (rbac.authorization.k8s.io/v1): Role, ClusterRole, RoleBinding, ClusterRoleBinding.

Validation follows pkg/apis/rbac/validation; Roles print NAME and CREATED AT (Kubernetes has no printer for
them, so its default table applies), bindings print ROLE and, wide, USERS/GROUPS/SERVICEACCOUNTS.
"""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, doc
from apiserver.strategies.kind import KindStrategy

RBAC_GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("Group", "ServiceAccount", "User")


def path_segment_name(name: str) -> list[str]:
    """ValidatePathSegmentName: RBAC names may be almost anything that fits in a URL path segment."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def _validate_rules(rules: list[Obj], *, namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    for i, rule in enumerate(rules):
        path = f"rules[{i}]"
        if not rule.get("verbs"):
            causes.append(fe.required(f"{path}.verbs", "verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs") or []
        if urls:
            if namespaced:
                causes.append(fe.invalid(f"{path}.nonResourceURLs", fe.GoLiteral(fe.go_value(urls)),
                                         "namespaced rules cannot apply to non-resource URLs"))
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                causes.append(fe.invalid(f"{path}.nonResourceURLs", fe.GoLiteral(fe.go_value(urls)),
                                         "rules cannot apply to both regular resources and non-resource URLs"))
            continue
        if not rule.get("apiGroups"):
            causes.append(fe.required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
        if not rule.get("resources"):
            causes.append(fe.required(f"{path}.resources", "resource rules must supply at least one resource"))
    return causes


class _RBACStrategy(KindStrategy):
    tracks_generation = False

    def check_name(self, name: str) -> list[str]:
        return path_segment_name(name)


class RoleStrategy(_RBACStrategy):
    def table_columns(self) -> list[dict[str, Any]]:
        return [Column("Name", format="name", description=doc("meta.v1.ObjectMeta", "name")).definition(),
                Column("Created At", type="date",
                       description=doc("meta.v1.ObjectMeta", "creationTimestamp")).definition()]

    def table_row(self, obj: Obj, now: float) -> list[Any]:
        meta = obj.get("metadata") or {}
        return [meta.get("name", ""), meta.get("creationTimestamp", "")]

    def validate_kind(self, obj: Obj) -> list[Cause]:
        return _validate_rules(obj.get("rules") or [], namespaced=self.info.namespaced)


class RoleBindingStrategy(_RBACStrategy):
    columns = [
        Column("Role", description=doc("rbac.v1.RoleBinding", "roleRef")),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
        Column("Users", priority=1, description="Users in the roleBinding"),
        Column("Groups", priority=1, description="Groups in the roleBinding"),
        Column("ServiceAccounts", priority=1, description="ServiceAccounts in the roleBinding"),
    ]

    def default(self, obj: Obj) -> None:
        # SetDefaults_Subject: User and Group subjects belong to the RBAC API group unless they say otherwise.
        for subject in obj.get("subjects") or []:
            if isinstance(subject, dict) and subject.get("kind") in ("User", "Group") and not subject.get("apiGroup"):
                subject["apiGroup"] = RBAC_GROUP

    def role_kinds(self) -> tuple[str, ...]:
        return ("ClusterRole", "Role") if self.info.namespaced else ("ClusterRole",)

    def validate_kind(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        ref = obj.get("roleRef") or {}
        if ref.get("apiGroup") != RBAC_GROUP:
            causes.append(fe.not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), [RBAC_GROUP]))
        if ref.get("kind") not in self.role_kinds():
            causes.append(fe.not_supported("roleRef.kind", ref.get("kind", ""), self.role_kinds()))
        if not ref.get("name"):
            causes.append(fe.required("roleRef.name"))
        for i, subject in enumerate(obj.get("subjects") or []):
            path = f"subjects[{i}]"
            kind = subject.get("kind")
            if not subject.get("name"):
                causes.append(fe.required(f"{path}.name"))
            if kind == "ServiceAccount":
                if subject.get("apiGroup"):
                    causes.append(fe.not_supported(f"{path}.apiGroup", subject["apiGroup"], [""]))
                if not self.info.namespaced and not subject.get("namespace"):
                    causes.append(fe.required(f"{path}.namespace"))
            elif kind in ("User", "Group"):
                if subject.get("apiGroup") != RBAC_GROUP:
                    causes.append(fe.not_supported(f"{path}.apiGroup", subject.get("apiGroup", ""), [RBAC_GROUP]))
            else:
                causes.append(fe.not_supported(f"{path}.kind", kind, SUBJECT_KINDS))
        return causes

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        if new.get("roleRef") != old.get("roleRef"):
            ref = new.get("roleRef") or {}
            value = fe.GoLiteral(f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", Kind:"{ref.get("kind", "")}", '
                                 f'Name:"{ref.get("name", "")}"}}')
            return [fe.invalid("roleRef", value, "cannot change roleRef")]
        return []

    def cells(self, obj: Obj, now: float) -> list[Any]:
        ref = obj.get("roleRef") or {}
        users, groups, accounts = [], [], []
        for subject in obj.get("subjects") or []:
            if subject.get("kind") == "User":
                users.append(subject.get("name", ""))
            elif subject.get("kind") == "Group":
                groups.append(subject.get("name", ""))
            elif subject.get("kind") == "ServiceAccount":
                accounts.append(f"{subject.get('namespace', '')}/{subject.get('name', '')}")
        return [f"{ref.get('kind', '')}/{ref.get('name', '')}", age_cell(obj, now), ", ".join(users),
                ", ".join(groups), ", ".join(accounts)]
