"""Garbage collector: delete dependents whose owners are gone, and carry out foreground and orphan deletion.

Keys are `resource|namespace/name` across every monitored resource (one shared informer each). For an object:
- it is being deleted with the `foregroundDeletion` finalizer: delete its dependents, and once none with
  `blockOwnerDeletion: true` is left, remove the finalizer (the API server then deletes it);
- it is being deleted with the `orphan` finalizer: strip its ownerReference from every dependent, then remove
  the finalizer. Dependents are read from a cache only when that cache has caught up with the owner's
  deletion (its resourceVersion); otherwise from a live list, because a dependent missed here would keep a
  reference to an owner about to vanish and be collected as dangling right after — the orphan would be lost;
- it has ownerReferences: an owner missing from the cache is confirmed absent by a live GET (uid compared), so
  a lagging watch never deletes a dependent of a living owner. All owners absent (or deleting in foreground)
  → delete it (background); some absent → remove the dangling references. The delete carries the
  resourceVersion the decision was made on as a precondition, so a stale cached copy (say, one whose reference
  an orphaning owner has just stripped) can never get an object deleted: the API server answers 409 and the
  newer version's event brings the key back.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.resources import ResourceInfo, by_api_version_kind, lookup
from aiokube.api.types import Obj
from aiokube.client import Result
from controllers.informers import dependents_of
from controllers.ownerrefs import object_key, owner_refs, split_key, uid_of

log = logging.getLogger(__name__)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"

# Resources whose objects may carry ownerReferences and are watched for it. Events are left out on purpose:
# they are many, short-lived and never owned.
MONITORED = ("pods", "replicasets", "deployments", "daemonsets", "statefulsets", "jobs", "cronjobs", "services",
             "endpoints", "endpointslices", "configmaps", "secrets", "serviceaccounts")


def resource_name(info: ResourceInfo) -> str:
    """A name `lookup` resolves unambiguously: group/version/plural for named groups."""
    return f"{info.group}/{info.version}/{info.plural}" if info.group else info.plural


def _revision(obj: Obj) -> int:
    """An object's resourceVersion as a number (etcd revisions are global), 0 when unknown."""
    try:
        return int(obj.get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def finalizers_of(obj: Obj) -> list[str]:
    return list(obj.get("metadata", {}).get("finalizers") or [])


class GarbageCollector:
    name = "garbagecollector"

    def __init__(self, *, client: Any, informers: Any, resources: tuple[str, ...] = MONITORED) -> None:
        self.client = client
        self.monitored: dict[str, Any] = {r: informers.get(r) for r in resources}
        self.queue: Any = None

    @property
    def informers(self) -> list[Any]:
        return list(self.monitored.values())

    # --- events -> keys -----------------------------------------------------------------------------------
    def watch(self, queue: Any) -> None:
        self.queue = queue
        for resource, informer in self.monitored.items():
            informer.add_handler(
                on_add=lambda obj, r=resource: self._changed(r, obj),
                on_update=lambda _old, new, r=resource: self._changed(r, new),
                on_delete=lambda obj, r=resource: self._deleted(obj),
            )

    def _enqueue(self, resource: str, obj: Obj) -> None:
        self.queue.add(f"{resource}|{object_key(obj)}")

    def _changed(self, resource: str, obj: Obj) -> None:
        deleting = obj.get("metadata", {}).get("deletionTimestamp")
        if owner_refs(obj) or (deleting and {FOREGROUND, ORPHAN} & set(finalizers_of(obj))):
            self._enqueue(resource, obj)

    def _deleted(self, obj: Obj) -> None:
        uid = uid_of(obj)
        for resource, informer in self.monitored.items():
            for dependent in dependents_of(informer, uid):  # they may have lost their last owner
                self._enqueue(resource, dependent)
        for ref in owner_refs(obj):  # an owner in foreground deletion may have been waiting for this one
            found = self._cached_by_uid(str(ref.get("uid", "")))
            if found is not None:
                self._enqueue(*found)

    def _cached_by_uid(self, uid: str) -> tuple[str, Obj] | None:
        for resource, informer in self.monitored.items():
            hits = informer.store.by_index("uid", uid)
            if hits:
                return resource, hits[0]
        return None

    # --- reconcile ----------------------------------------------------------------------------------------
    async def reconcile(self, key: str) -> Result:
        resource, _, obj_key = key.partition("|")
        informer = self.monitored.get(resource)
        obj = informer.store.get(obj_key) if informer is not None else None
        if obj is None:
            return Result()
        if obj["metadata"].get("deletionTimestamp"):
            finalizers = finalizers_of(obj)
            if FOREGROUND in finalizers:
                return await self._delete_dependents_first(resource, obj)
            if ORPHAN in finalizers:
                return await self._orphan_dependents(resource, obj)
        if owner_refs(obj):
            await self._check_owners(resource, obj)
        return Result()

    def _dependents(self, owner: Obj) -> list[tuple[str, Obj]]:
        uid = uid_of(owner)
        return [(r, d) for r, inf in self.monitored.items() for d in dependents_of(inf, uid)]

    async def _owner_exists(self, dependent: Obj, ref: dict[str, Any]) -> Obj | None:
        """The owner object, or None when it is verifiably gone (cache miss confirmed by a live GET)."""
        info = by_api_version_kind(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
        uid = str(ref.get("uid", ""))
        if info is None:
            return {"metadata": {"uid": uid}}  # a kind we cannot look up: never treat it as gone
        informer = self.monitored.get(info.plural)
        if informer is not None:
            hits = informer.store.by_index("uid", uid)
            if hits:
                return dict(hits[0])
        namespace = dependent["metadata"].get("namespace") if info.namespaced else None
        if info.namespaced and not namespace:
            return None  # a cluster-scoped object cannot be owned by a namespaced one
        try:
            live: Obj = await self.client.get(resource_name(info), str(ref.get("name", "")), namespace=namespace)
        except ApiError as err:
            if err.code == 404:
                return None
            raise
        return live if uid_of(live) == uid else None

    async def _check_owners(self, resource: str, obj: Obj) -> None:
        dangling: list[dict[str, Any]] = []
        waiting: list[dict[str, Any]] = []
        solid: list[dict[str, Any]] = []
        for ref in owner_refs(obj):
            owner = await self._owner_exists(obj, ref)
            if owner is None:
                dangling.append(ref)
            elif owner.get("metadata", {}).get("deletionTimestamp") and FOREGROUND in finalizers_of(owner):
                waiting.append(ref)
            else:
                solid.append(ref)
        if not dangling and not waiting:
            return
        meta = obj["metadata"]
        if solid:
            if dangling:
                log.info("gc: removing dangling owner references from %s %s", resource, object_key(obj))
                await self._set_owner_refs(resource, obj, solid + waiting)
            return
        if meta.get("deletionTimestamp"):
            return  # already on its way out
        policy = "Foreground" if waiting and self._dependents(obj) else "Background"
        log.info("gc: deleting %s %s (owners gone: %s)", resource, object_key(obj),
                 ", ".join(f"{r.get('kind')}/{r.get('name')}" for r in dangling + waiting))
        await self._delete(resource, obj, policy)

    async def _delete(self, resource: str, obj: Obj, policy: str) -> None:
        meta = obj["metadata"]
        preconditions = {"uid": meta.get("uid")}
        if meta.get("resourceVersion"):
            preconditions["resourceVersion"] = meta["resourceVersion"]
        try:
            await self.client.delete(resource, meta["name"], namespace=meta.get("namespace"),
                                     propagation_policy=policy, preconditions=preconditions)
        except ApiError as err:
            # 404: gone already. 409: replaced by a new object of the same name, or changed since the version
            # we judged; that change's event requeues the key and the next reconcile judges it afresh.
            if err.code not in (404, 409):
                raise

    async def _set_owner_refs(self, resource: str, obj: Obj, refs: list[dict[str, Any]]) -> None:
        meta = obj["metadata"]
        body = {"metadata": {"ownerReferences": refs, "resourceVersion": meta.get("resourceVersion")}}
        try:
            await self.client.patch(resource, meta["name"], body, namespace=meta.get("namespace"),
                                    patch_type="merge")
        except ApiError as err:
            if err.code != 404:
                raise  # 409: a newer version exists; the retry reads it

    async def _remove_finalizer(self, resource: str, obj: Obj, finalizer: str) -> None:
        meta = obj["metadata"]
        remaining = [f for f in finalizers_of(obj) if f != finalizer]
        body = {"metadata": {"finalizers": remaining or None, "resourceVersion": meta.get("resourceVersion")}}
        try:
            await self.client.patch(resource, meta["name"], body, namespace=meta.get("namespace"),
                                    patch_type="merge")
        except ApiError as err:
            if err.code != 404:
                raise

    async def _delete_dependents_first(self, resource: str, owner: Obj) -> Result:
        uid = uid_of(owner)
        blocking = 0
        # Complete, not just cached: a dependent created just before the deletion but not yet in a lagging cache
        # would otherwise let the owner go first (and be collected only afterwards, in the background).
        for dep_resource, dep in await self._complete_dependents(owner):
            ref = next((r for r in owner_refs(dep) if r.get("uid") == uid), {})
            if ref.get("blockOwnerDeletion"):
                blocking += 1
            if not dep["metadata"].get("deletionTimestamp"):
                policy = "Foreground" if self._dependents(dep) else "Background"
                await self._delete(dep_resource, dep, policy)
        if blocking:
            return Result()  # each dependent's deletion event brings this owner back
        log.info("gc: dependents of %s %s gone, removing %s", resource, object_key(owner), FOREGROUND)
        await self._remove_finalizer(resource, owner, FOREGROUND)
        return Result()

    async def _orphan_dependents(self, resource: str, owner: Obj) -> Result:
        uid = uid_of(owner)
        for dep_resource, dep in await self._complete_dependents(owner):
            await self._strip_ref(dep_resource, dep, uid)
        log.info("gc: dependents of %s %s orphaned, removing %s", resource, object_key(owner), ORPHAN)
        await self._remove_finalizer(resource, owner, ORPHAN)
        return Result()

    async def _complete_dependents(self, owner: Obj) -> list[tuple[str, Obj]]:
        """Every dependent existing when the owner was marked for deletion, caught-up caches or not."""
        owner_rv = _revision(owner)
        lists = await asyncio.gather(*(self._dependents_in(resource, informer, owner, owner_rv)
                                       for resource, informer in self.monitored.items()))
        return [(resource, dep) for resource, deps in zip(self.monitored, lists, strict=True) for dep in deps]

    async def _dependents_in(self, resource: str, informer: Any, owner: Obj, owner_rv: int) -> list[Obj]:
        uid = uid_of(owner)
        cached_rv = _revision({"metadata": {"resourceVersion": getattr(informer, "last_resource_version", None)}})
        if owner_rv and cached_rv >= owner_rv:
            return dependents_of(informer, uid)  # this cache has seen everything up to the owner's deletion
        # A cluster-scoped owner (namespace None) may have dependents in every namespace.
        namespace = owner["metadata"].get("namespace") or None
        listed = await self.client.list(resource_name(lookup(resource)), namespace=namespace)
        return [item for item in listed.get("items") or []
                if any(ref.get("uid") == uid for ref in owner_refs(item))]

    async def _strip_ref(self, resource: str, dep: Obj, owner_uid: str) -> None:
        current = copy.deepcopy(dep)
        for attempt in range(3):
            refs = [r for r in owner_refs(current) if r.get("uid") != owner_uid]
            try:
                await self.client.patch(resource, current["metadata"]["name"],
                                        {"metadata": {"ownerReferences": refs or None,
                                                      "resourceVersion": current["metadata"].get("resourceVersion")}},
                                        namespace=current["metadata"].get("namespace"), patch_type="merge")
                return
            except ApiError as err:
                if err.code == 404:
                    return
                if err.code != 409 or attempt == 2:
                    raise
            namespace, name = split_key(object_key(current))
            try:
                current = await self.client.get(resource_name(lookup(resource)), name, namespace=namespace)
            except ApiError as err:
                if err.code == 404:
                    return
                raise
