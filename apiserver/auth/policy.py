"""The live RBAC policy of a running API server: four ObjectCaches (Roles, ClusterRoles, RoleBindings,
ClusterRoleBindings) behind the authorizer's PolicySource, and the step that writes the default policy."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from apiserver.auth.bootstrap_policy import default_cluster_role_bindings, default_cluster_roles, needs_reconcile
from apiserver.auth.object_cache import ObjectCache
from apiserver.handlers.common import from_kv
from apiserver.handlers.state import ServerState

log = logging.getLogger(__name__)

MANAGER = "kube-apiserver"


class CachedPolicy:
    """PolicySource over the caches; `start()` returns once all four hold a complete list."""

    def __init__(self, state: ServerState) -> None:
        def cache(plural: str) -> ObjectCache:
            handle = state.registry.handle(plural)
            return ObjectCache(handle.storage, handle.root, handle.watch_cache, namespaced=handle.info.namespaced)

        self.roles = cache("roles")
        self.cluster_roles = cache("clusterroles")
        self.role_binding_cache = cache("rolebindings")
        self.cluster_role_binding_cache = cache("clusterrolebindings")
        self._all = (self.roles, self.cluster_roles, self.role_binding_cache, self.cluster_role_binding_cache)

    async def start(self) -> None:
        for c in self._all:
            await c.start()

    async def stop(self) -> None:
        for c in self._all:
            await c.stop()

    async def wait_for(self, revision: int) -> None:
        """Wait until every cache has seen store revision `revision`; bound it with `asyncio.timeout`."""
        for c in self._all:
            await c.wait_for(revision)

    # --- PolicySource ------------------------------------------------------------------------------------------
    def cluster_role(self, name: str) -> Obj | None:
        return self.cluster_roles.get("", name)

    def role(self, namespace: str, name: str) -> Obj | None:
        return self.roles.get(namespace, name)

    def cluster_role_bindings(self) -> Iterable[Obj]:
        return self.cluster_role_binding_cache.all()

    def role_bindings(self, namespace: str) -> Iterable[Obj]:
        return self.role_binding_cache.in_namespace(namespace)


async def ensure_default_policy(state: ServerState) -> None:
    """Create the default ClusterRoles/ClusterRoleBindings; restore autoupdate-marked ones that drifted."""
    from apiserver.handlers.create import WriteOptions, create_object
    from apiserver.handlers.update import update_object

    options = WriteOptions(manager=MANAGER)
    for plural, objects in (("clusterroles", default_cluster_roles()),
                            ("clusterrolebindings", default_cluster_role_bindings())):
        handle = state.registry.handle(plural)
        for wanted in objects:
            name = wanted["metadata"]["name"]
            kv = await handle.storage.get(handle.key(None, name))
            try:
                if kv is None:
                    await create_object(state, handle, None, wanted, options)
                    continue
                existing = from_kv(kv)
                if needs_reconcile(existing, wanted):
                    log.info("restoring default %s %s", wanted["kind"], name)
                    fixed = dict(existing)
                    for field in ("rules", "subjects", "roleRef"):
                        if field in wanted:
                            fixed[field] = wanted[field]
                    await update_object(state, handle, None, name, fixed, options)
            except ApiError as exc:
                if exc.reason not in ("AlreadyExists", "Conflict"):  # another API server got there first
                    raise
