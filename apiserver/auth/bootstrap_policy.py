"""The default RBAC policy the API server creates at start, after Kubernetes' bootstrap policy: user-facing
roles (cluster-admin, admin, edit, view), discovery for every authenticated user, and roles bound to the
components (nodes, controller-manager, scheduler) and to joining nodes (bootstrappers).

Differences from Kubernetes, on purpose:
  * admin/edit/view are written out rather than aggregated (no aggregationRule controller here).
  * system:node is bound to the group system:nodes (Kubernetes grants nodes through its Node authorizer); the
    node restriction (node_restriction.py) then limits a node's writes to its own objects. Reads of Secrets,
    ConfigMaps and PVCs are not in the role: the Node authorizer (node_authorizer.py) grants them per object.
  * the controller-manager runs every controller under its own credential (Kubernetes can give each one a
    service account), so its role covers what all of them touch.
Objects carry `rbac.authorization.kubernetes.io/autoupdate: "true"`; `ensure_default_policy` creates missing
ones and restores the rules of those still marked autoupdate, as Kubernetes' reconciliation does.
"""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj

API_VERSION = "rbac.authorization.k8s.io/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
ALL_VERBS = READ + WRITE


def rule(verbs: list[str], groups: list[str], resources: list[str], names: list[str] | None = None) -> Obj:
    r: Obj = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if names:
        r["resourceNames"] = names
    return r


def url_rule(verbs: list[str], urls: list[str]) -> Obj:
    return {"verbs": verbs, "nonResourceURLs": urls}


def _meta(name: str) -> Obj:
    return {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {AUTOUPDATE: "true"}}


def cluster_role(name: str, rules: list[Obj]) -> Obj:
    return {"apiVersion": API_VERSION, "kind": "ClusterRole", "metadata": _meta(name), "rules": rules}


def cluster_role_binding(name: str, role: str, subjects: list[tuple[str, str]]) -> Obj:
    return {"apiVersion": API_VERSION, "kind": "ClusterRoleBinding", "metadata": _meta(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}
                         for kind, subject in subjects]}


WORKLOADS = ["deployments", "deployments/scale", "replicasets", "replicasets/scale", "statefulsets",
             "statefulsets/scale", "daemonsets"]
CORE_NAMESPACED = ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "configmaps", "endpoints",
                   "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale", "secrets",
                   "serviceaccounts", "services", "services/proxy"]


def _view_rules() -> list[Obj]:
    return [
        rule(READ, [""], ["pods", "pods/log", "pods/status", "configmaps", "endpoints", "persistentvolumeclaims",
                          "persistentvolumeclaims/status", "replicationcontrollers", "replicationcontrollers/scale",
                          "replicationcontrollers/status", "serviceaccounts", "services", "services/status",
                          "bindings", "events", "limitranges", "namespaces", "namespaces/status",
                          "resourcequotas", "resourcequotas/status"]),
        rule(READ, ["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
                              "deployments/scale", "deployments/status", "replicasets", "replicasets/scale",
                              "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status"]),
        rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
        rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
        rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
        rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
        rule(READ, ["events.k8s.io"], ["events"]),
    ]


def _edit_rules() -> list[Obj]:
    return [
        *_view_rules(),
        rule(READ + WRITE, [""], CORE_NAMESPACED),
        rule(["create"], [""], ["pods/eviction"]),
        rule(["impersonate"], [""], ["serviceaccounts"]),
        rule(["create"], [""], ["serviceaccounts/token"]),
        rule(READ + WRITE, ["apps"], WORKLOADS),
        rule(READ + WRITE, ["batch"], ["cronjobs", "jobs"]),
        rule(READ + WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
        rule(READ + WRITE, ["policy"], ["poddisruptionbudgets"]),
        rule(READ + WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
        rule(READ + WRITE, ["discovery.k8s.io"], ["endpointslices"]),
        rule(READ + WRITE, ["coordination.k8s.io"], ["leases"]),
    ]


def _admin_rules() -> list[Obj]:
    return [
        *_edit_rules(),
        rule(READ + WRITE, ["rbac.authorization.k8s.io"], ["rolebindings", "roles"]),
        rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    ]


def _node_rules() -> list[Obj]:
    return [
        rule([*READ, "create", "update", "patch", "delete"], [""], ["nodes"]),
        rule(["patch", "update"], [""], ["nodes/status"]),
        rule([*READ, "create", "delete"], [""], ["pods"]),
        rule(["patch", "update"], [""], ["pods/status"]),
        rule(["create"], [""], ["pods/eviction"]),
        rule(READ, [""], ["services", "endpoints", "namespaces"]),
        # Secrets, ConfigMaps, PVCs, PVs and serviceaccounts/token are granted by the Node authorizer
        # (node_authorizer.py), only for what the node's own pods reference.
        rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
        rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
        rule(["get", "create", "update", "patch", "delete"], ["coordination.k8s.io"], ["leases"]),
        rule(["get"], ["storage.k8s.io"], ["csidrivers", "csinodes", "volumeattachments"]),
        rule(["create", "get", "list", "watch"], ["certificates.k8s.io"], ["certificatesigningrequests"]),
    ]


def _controller_manager_rules() -> list[Obj]:
    return [
        # The garbage collector and the namespace controller read and delete objects of every kind.
        rule([*READ, "delete", "deletecollection"], ["*"], ["*"]),
        rule(ALL_VERBS, [""], ["pods", "pods/status", "pods/eviction", "nodes", "nodes/status", "namespaces",
                               "namespaces/status", "namespaces/finalize", "services", "services/status",
                               "endpoints", "configmaps", "secrets", "serviceaccounts", "serviceaccounts/token",
                               "persistentvolumeclaims", "persistentvolumes", "replicationcontrollers",
                               "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"]),
        rule(ALL_VERBS, ["", "events.k8s.io"], ["events"]),
        rule(ALL_VERBS, ["apps", "batch", "discovery.k8s.io", "policy", "autoscaling"], ["*"]),
        rule(ALL_VERBS, ["coordination.k8s.io"], ["leases"]),
        rule(ALL_VERBS, ["certificates.k8s.io"], ["certificatesigningrequests",
                                                  "certificatesigningrequests/approval",
                                                  "certificatesigningrequests/status"]),
    ]


def _scheduler_rules() -> list[Obj]:
    return [
        rule([*READ, "delete"], [""], ["pods"]),
        rule(["create"], [""], ["pods/binding", "bindings"]),
        rule(["patch", "update"], [""], ["pods/status"]),
        rule(READ, [""], ["nodes", "namespaces", "services", "replicationcontrollers", "persistentvolumeclaims",
                          "persistentvolumes", "configmaps"]),
        rule(READ, ["apps"], ["replicasets", "statefulsets"]),
        rule(READ, ["policy"], ["poddisruptionbudgets"]),
        rule(READ, ["scheduling.k8s.io"], ["priorityclasses"]),
        rule(READ, ["storage.k8s.io"], ["csidrivers", "csinodes", "csistoragecapacities", "storageclasses"]),
        rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
        rule(ALL_VERBS, ["coordination.k8s.io"], ["leases"]),
    ]


DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/readyz", "/openapi", "/openapi/*",
                  "/version", "/version/"]
PUBLIC_INFO_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]


def default_cluster_roles() -> list[Obj]:
    return [
        cluster_role("cluster-admin", [rule(["*"], ["*"], ["*"]), url_rule(["*"], ["*"])]),
        cluster_role("admin", _admin_rules()),
        cluster_role("edit", _edit_rules()),
        cluster_role("view", _view_rules()),
        cluster_role("system:discovery", [url_rule(["get"], DISCOVERY_URLS)]),
        cluster_role("system:public-info-viewer", [url_rule(["get"], PUBLIC_INFO_URLS)]),
        cluster_role("system:node", _node_rules()),
        cluster_role("system:node-bootstrapper",
                     [rule(["create", "get", "list", "watch"], ["certificates.k8s.io"],
                           ["certificatesigningrequests"])]),
        cluster_role("system:kube-controller-manager", _controller_manager_rules()),
        cluster_role("system:kube-scheduler", _scheduler_rules()),
        cluster_role("system:node-proxier", [
            rule(["list", "watch"], [""], ["endpoints", "services", "nodes"]),
            rule(["get"], [""], ["nodes"]),
            rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
            rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
        ]),
    ]


def default_cluster_role_bindings() -> list[Obj]:
    return [
        cluster_role_binding("cluster-admin", "cluster-admin", [("Group", "system:masters")]),
        cluster_role_binding("system:discovery", "system:discovery", [("Group", "system:authenticated")]),
        cluster_role_binding("system:public-info-viewer", "system:public-info-viewer",
                             [("Group", "system:authenticated"), ("Group", "system:unauthenticated")]),
        cluster_role_binding("system:node", "system:node", [("Group", "system:nodes")]),
        cluster_role_binding("system:node-bootstrapper", "system:node-bootstrapper",
                             [("Group", "system:bootstrappers")]),
        cluster_role_binding("system:kube-controller-manager", "system:kube-controller-manager",
                             [("User", "system:kube-controller-manager")]),
        cluster_role_binding("system:kube-scheduler", "system:kube-scheduler", [("User", "system:kube-scheduler")]),
        cluster_role_binding("system:node-proxier", "system:node-proxier", [("Group", "system:nodes")]),
    ]


def needs_reconcile(existing: Obj, wanted: Obj) -> bool:
    """True when an autoupdate-marked default object lost its rules/subjects/roleRef."""
    annotations: dict[str, Any] = (existing.get("metadata") or {}).get("annotations") or {}
    if annotations.get(AUTOUPDATE, "true") == "false":
        return False
    fields = ("rules",) if wanted["kind"] == "ClusterRole" else ("subjects", "roleRef")
    return any(existing.get(f) != wanted.get(f) for f in fields)
