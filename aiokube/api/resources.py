"""The registry of API resources this project serves.

One `ResourceInfo` per resource (plural name within a group/version). The API server builds discovery, routes
and storage keys from it; the client builds URLs from it. Adding a kind is one entry here plus its strategy in
apiserver/strategies/.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceInfo:
    group: str  # "" for core
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # subresource name -> (kind, group, version, verbs); group/version "" means same as the parent
    subresources: dict[str, tuple[str, str, str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def storage_group(self) -> str:
        return self.group or "core"

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The REST path of a collection, an object or one of its subresources."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


_STATUS = ("get", "patch", "update")

RESOURCES: tuple[ResourceInfo, ...] = (
    # core/v1
    ResourceInfo("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",),
                 verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
                 subresources={"status": ("Namespace", "", "", _STATUS),
                               "finalize": ("Namespace", "", "", ("update",))}),
    ResourceInfo("", "v1", "Pod", "pods", "pod", True, ("po",), ("all",),
                 subresources={
                     "status": ("Pod", "", "", _STATUS),
                     "binding": ("Binding", "", "", ("create",)),
                     "eviction": ("Eviction", "policy", "v1", ("create",)),
                     "log": ("Pod", "", "", ("get",)),
                     "exec": ("PodExecOptions", "", "", ("create", "get")),
                 }),
    ResourceInfo("", "v1", "Binding", "bindings", "binding", True, verbs=("create",)),
    ResourceInfo("", "v1", "Node", "nodes", "node", False, ("no",),
                 subresources={"status": ("Node", "", "", _STATUS)}),
    ResourceInfo("", "v1", "Service", "services", "service", True, ("svc",), ("all",),
                 verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
                 subresources={"status": ("Service", "", "", _STATUS)}),
    ResourceInfo("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",)),
    ResourceInfo("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
    ResourceInfo("", "v1", "Secret", "secrets", "secret", True),
    ResourceInfo("", "v1", "Event", "events", "event", True, ("ev",)),
    ResourceInfo("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",)),
    # apps/v1
    ResourceInfo("apps", "v1", "Deployment", "deployments", "deployment", True, ("deploy",), ("all",),
                 subresources={"status": ("Deployment", "", "", _STATUS),
                               "scale": ("Scale", "autoscaling", "v1", _STATUS)}),
    ResourceInfo("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ("rs",), ("all",),
                 subresources={"status": ("ReplicaSet", "", "", _STATUS),
                               "scale": ("Scale", "autoscaling", "v1", _STATUS)}),
    ResourceInfo("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, ("ds",), ("all",),
                 subresources={"status": ("DaemonSet", "", "", _STATUS)}),
    ResourceInfo("apps", "v1", "StatefulSet", "statefulsets", "statefulset", True, ("sts",), ("all",),
                 subresources={"status": ("StatefulSet", "", "", _STATUS),
                               "scale": ("Scale", "autoscaling", "v1", _STATUS)}),
    # batch/v1
    ResourceInfo("batch", "v1", "Job", "jobs", "job", True, (), ("all",),
                 subresources={"status": ("Job", "", "", _STATUS)}),
    ResourceInfo("batch", "v1", "CronJob", "cronjobs", "cronjob", True, ("cj",), ("all",),
                 subresources={"status": ("CronJob", "", "", _STATUS)}),
    # coordination.k8s.io/v1
    ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
    # discovery.k8s.io/v1
    ResourceInfo("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True),
    # scheduling.k8s.io/v1
    ResourceInfo("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", False, ("pc",)),
    # rbac.authorization.k8s.io/v1
    ResourceInfo("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", True),
    ResourceInfo("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", True),
    ResourceInfo("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", False),
    ResourceInfo("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings",
                 "clusterrolebinding", False),
    # certificates.k8s.io/v1
    ResourceInfo("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests",
                 "certificatesigningrequest", False, ("csr",),
                 subresources={"status": ("CertificateSigningRequest", "", "", _STATUS),
                               "approval": ("CertificateSigningRequest", "", "", _STATUS)}),
)

_BY_PLURAL: dict[str, ResourceInfo] = {}
_BY_GVR: dict[tuple[str, str, str], ResourceInfo] = {}
_BY_GVK: dict[tuple[str, str, str], ResourceInfo] = {}
for _r in RESOURCES:
    _BY_PLURAL.setdefault(_r.plural, _r)
    _BY_GVR[(_r.group, _r.version, _r.plural)] = _r
    _BY_GVK[(_r.group, _r.version, _r.kind)] = _r


def by_gvr(group: str, version: str, plural: str) -> ResourceInfo | None:
    return _BY_GVR.get((group, version, plural))


def by_gvk(group: str, version: str, kind: str) -> ResourceInfo | None:
    return _BY_GVK.get((group, version, kind))


def by_api_version_kind(api_version: str, kind: str) -> ResourceInfo | None:
    group, _, version = api_version.rpartition("/")
    return by_gvk(group, version, kind)


def lookup(resource: str) -> ResourceInfo:
    """Resolve a plural name ("pods"), a short name ("deploy"), "plural.group" or "group/version/plural"."""
    if resource in _BY_PLURAL:
        return _BY_PLURAL[resource]
    if resource.count("/") == 2:
        group, version, plural = resource.split("/")
        found = by_gvr(group, version, plural)
        if found:
            return found
    if resource.count("/") == 1:
        version, plural = resource.split("/")
        found = by_gvr("", version, plural)
        if found:
            return found
    plural, _, group = resource.partition(".")
    for r in RESOURCES:
        if group and r.group == group and r.plural == plural:
            return r
        if resource in r.short_names or resource == r.singular or resource == r.kind.lower():
            return r
    raise KeyError(f"unknown resource {resource!r}")


def group_versions() -> dict[str, list[str]]:
    """group -> versions served, in registry order."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out
