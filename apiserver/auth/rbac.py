"""The RBAC authorizer: does any Role/ClusterRole bound to this user allow these request attributes?

Semantics of rbac.authorization.k8s.io/v1 as Kubernetes evaluates them:
  * ClusterRoleBindings grant their ClusterRole everywhere; RoleBindings grant their Role or ClusterRole only
    in the binding's namespace.
  * A subject matches by User name, by Group, or as ServiceAccount `system:serviceaccount:<ns>:<name>`
    (a RoleBinding's ServiceAccount subject without a namespace means the binding's namespace).
  * A rule matches when verb, apiGroup, resource (`pods`, `pods/status`, `*`, `*/status`) and, if given,
    resourceNames all match; non-resource rules match the path exactly or by a trailing `*` prefix.
  * Nothing denies: the first matching rule allows. Members of system:masters are always allowed.
A binding that points at a missing role grants nothing; the denial's reason then says so, as Kubernetes' does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from aiokube.api.types import Obj
from apiserver.auth.attributes import Attributes
from apiserver.auth.user import MASTERS, SERVICE_ACCOUNT_PREFIX, UserInfo

RBAC_GROUP = "rbac.authorization.k8s.io"


class PolicySource(Protocol):
    """Where the authorizer reads RBAC objects (the API server passes its watch-fed caches)."""

    def cluster_role(self, name: str) -> Obj | None: ...

    def role(self, namespace: str, name: str) -> Obj | None: ...

    def cluster_role_bindings(self) -> Iterable[Obj]: ...

    def role_bindings(self, namespace: str) -> Iterable[Obj]: ...


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def subject_matches(subject: Obj, user: UserInfo, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return bool(name) and user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.name == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"
    return False


def _has(values: list[str] | None, wanted: str) -> bool:
    return bool(values) and ("*" in values or wanted in values)  # type: ignore[operator]


def _resource_matches(rule_resources: list[str], attrs: Attributes) -> bool:
    combined = attrs.resource_with_subresource
    for resource in rule_resources:
        if resource == "*" or resource == combined:
            return True
        # "*/status" grants the status subresource of every resource.
        if attrs.subresource and resource.startswith("*/") and resource[2:] == attrs.subresource:
            return True
    return False


def _non_resource_url_matches(rule_urls: list[str], path: str) -> bool:
    for url in rule_urls:
        if url == "*" or url == path:
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


def rule_allows(rule: Obj, attrs: Attributes) -> bool:
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.resource_request:
        return _non_resource_url_matches(rule.get("nonResourceURLs") or [], attrs.path)
    if not _has(rule.get("apiGroups"), attrs.api_group):
        return False
    if not _resource_matches(rule.get("resources") or [], attrs):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


class RBACAuthorizer:
    def __init__(self, policy: PolicySource) -> None:
        self.policy = policy

    def authorize(self, user: UserInfo, attrs: Attributes) -> Decision:
        if MASTERS in user.groups:
            return Decision(True)
        errors: list[str] = []
        for rules in self._rules_for(user, attrs.namespace, errors):
            if any(rule_allows(rule, attrs) for rule in rules):
                return Decision(True)
        if not errors:
            return Decision(False)
        listed = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        return Decision(False, f"RBAC: {listed}")

    def _rules_for(self, user: UserInfo, namespace: str, errors: list[str]) -> Iterator[list[Obj]]:
        """Rule lists of every role bound to `user` that applies in `namespace` (cluster-wide ones first)."""
        for binding in self.policy.cluster_role_bindings():
            if any(subject_matches(s, user, "") for s in binding.get("subjects") or []):
                yield self._role_rules(binding, "", errors)
        if not namespace:
            return
        for binding in self.policy.role_bindings(namespace):
            if any(subject_matches(s, user, namespace) for s in binding.get("subjects") or []):
                yield self._role_rules(binding, namespace, errors)

    def _role_rules(self, binding: Obj, namespace: str, errors: list[str]) -> list[Obj]:
        ref = binding.get("roleRef") or {}
        kind, name = ref.get("kind"), ref.get("name", "")
        if kind == "ClusterRole":
            role = self.policy.cluster_role(name)
            missing = f'clusterrole.{RBAC_GROUP} "{name}" not found'
        elif kind == "Role" and namespace:
            role = self.policy.role(namespace, name)
            missing = f'role.{RBAC_GROUP} "{name}" not found'
        else:
            return []
        if role is None:
            errors.append(missing)
            return []
        return list(role.get("rules") or [])


def forbidden_message(user: UserInfo, attrs: Attributes, reason: str = "") -> str:
    """Kubernetes' wording: `pods "web" is forbidden: User "bob" cannot get resource "pods" in API group ""
    in the namespace "default"` (the trailing reason only when the authorizer gave one)."""
    if not attrs.resource_request:
        message = f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
    else:
        what = f'User "{user.name}" cannot {attrs.verb} resource "{attrs.resource_with_subresource}" in API ' \
               f'group "{attrs.api_group}"'
        where = f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
        subject = attrs.qualified_resource + (f' "{attrs.name}"' if attrs.name else "")
        message = f"{subject} is forbidden: {what}{where}"
    return f"{message}: {reason}" if reason else message
