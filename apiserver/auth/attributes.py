"""Request attributes for authorization (Kubernetes' RequestInfo): read from the method, path and query alone,
before any handler runs, so an unauthorized request never touches storage.

    /api/v1/namespaces/default/pods/web/status    resource request: verb, apiGroup "", resource "pods",
                                                  subresource "status", namespace "default", name "web"
    /apis/apps/v1/watch/deployments               verb "watch"
    /api/v1/namespaces/dev                        resource "namespaces", name "dev", namespace "dev" (so a
                                                  RoleBinding in "dev" can grant access to its namespace)
    /healthz, /api, /apis/apps, /openapi/v3/...   non-resource request: verb = the lowercased HTTP method
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

_READ_METHODS = {"GET", "HEAD"}
_NAMESPACE_SUBRESOURCES = ("status", "finalize")  # /api/v1/namespaces/{name}/{these} are about the namespace
_TRUE = ("1", "t", "T", "true", "TRUE", "True")  # Go's strconv.ParseBool


@dataclass(frozen=True)
class Attributes:
    verb: str
    path: str
    resource_request: bool
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def qualified_resource(self) -> str:
        """`pods`, `deployments.apps`: the form Kubernetes' Forbidden messages start with."""
        return f"{self.resource}.{self.api_group}" if self.api_group else self.resource

    @property
    def resource_with_subresource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @property
    def is_write(self) -> bool:
        return self.verb in ("create", "update", "patch", "delete", "deletecollection")


def _non_resource(method: str, path: str) -> Attributes:
    return Attributes(verb=method.lower(), path=path, resource_request=False)


def request_attributes(method: str, path: str, query_string: bytes | str = b"") -> Attributes:
    method = method.upper()
    parts = [p for p in path.strip("/").split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:  # discovery and everything else outside a group/version's resources
        return _non_resource(method, path)

    query = parse_qs(query_string.decode() if isinstance(query_string, bytes) else query_string)
    watch_path = rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces":
        namespace = rest[1]
        if len(rest) >= 3 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    if not rest:
        return _non_resource(method, path)
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 else ""

    if method in _READ_METHODS:
        verb = "get" if name else "list"
        if watch_path or (verb == "list" and query.get("watch", [""])[-1] in _TRUE):
            verb = "watch"
        if verb in ("list", "watch") and not name:
            # A list/watch narrowed to one name by fieldSelector=metadata.name=X is authorized as that name,
            # which lets resourceNames rules grant e.g. a node watching its own Node.
            for selector in query.get("fieldSelector", []):
                for term in selector.split(","):
                    key, sep, value = term.partition("=")
                    if sep and key.strip() == "metadata.name":
                        name = value.removeprefix("=").strip()  # `metadata.name==x` is equality too
    elif method == "POST":
        verb = "create"
    elif method == "PUT":
        verb = "update"
    elif method == "PATCH":
        verb = "patch"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = method.lower()
    return Attributes(verb=verb, path=path, resource_request=True, api_group=group, api_version=version,
                      resource=resource, subresource=subresource, namespace=namespace, name=name)
