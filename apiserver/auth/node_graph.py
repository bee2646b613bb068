"""The node graph behind the Node authorizer: which Secrets, ConfigMaps, PersistentVolumeClaims and
ServiceAccounts each node's pods reference, kept current by a watch of pods inside the API server.

Edges come from pods bound to a node (spec.nodeName set) only:

    pod -> secret          volumes[].secret, projected sources' secret, a volume's secretRef /
                           nodePublishSecretRef / secretName (CSI, CephFS, RBD, Azure File...), env
                           valueFrom.secretKeyRef, envFrom[].secretRef, spec.imagePullSecrets
    pod -> configmap       volumes[].configMap, projected sources' configMap, env valueFrom.configMapKeyRef,
                           envFrom[].configMapRef (in containers, initContainers and ephemeralContainers)
    pod -> pvc             volumes[].persistentVolumeClaim.claimName, and `<pod>-<volume>` for ephemeral volumes
    pod -> serviceaccount  spec.serviceAccountName (or the deprecated spec.serviceAccount)

Cost: each pod keeps only its node and its set of references (not the pod), and the index counts
(node, resource, namespace, name) -> pods, so a decision is one dict lookup. A pod write costs one decode and
a set comparison; the index changes only when the node or the references did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from aiokube.api.types import Obj
from apiserver.auth.object_cache import StoreFollower
from apiserver.storage.interface import Storage
from apiserver.watch_cache import WatchCache

# (resource, name) inside the pod's namespace; resource is the plural the request path names.
Reference = tuple[str, str]
# Volume sources of in-tree plugins that name a Secret: the key under the source and the name field in it.
_VOLUME_SECRET_REFS = (("secretRef", "name"), ("nodePublishSecretRef", "name"), ("controllerPublishSecretRef", "name"))
# The common volume kinds, handled above or naming no Secret: skipped by the scan for in-tree secret refs.
_PLUGINS_WITHOUT_SECRET_REFS = frozenset({"name", "secret", "projected", "configMap", "emptyDir", "hostPath",
                                          "downwardAPI", "persistentVolumeClaim", "ephemeral", "nfs", "image"})


def _env_references(container: Obj) -> Iterator[Reference]:
    for var in container.get("env") or []:
        value_from = var.get("valueFrom") or {}
        for key, resource in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            name = (value_from.get(key) or {}).get("name")
            if name:
                yield resource, name
    for source in container.get("envFrom") or []:
        for key, resource in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
            name = (source.get(key) or {}).get("name")
            if name:
                yield resource, name


def _volume_references(pod_name: str, volume: Obj) -> Iterator[Reference]:
    if name := (volume.get("secret") or {}).get("secretName"):
        yield "secrets", name
    if name := (volume.get("configMap") or {}).get("name"):
        yield "configmaps", name
    if name := (volume.get("persistentVolumeClaim") or {}).get("claimName"):
        yield "persistentvolumeclaims", name
    if "ephemeral" in volume and volume.get("name"):
        yield "persistentvolumeclaims", f"{pod_name}-{volume['name']}"  # the claim the ephemeral controller makes
    for source in (volume.get("projected") or {}).get("sources") or []:
        if name := (source.get("secret") or {}).get("name"):
            yield "secrets", name
        if name := (source.get("configMap") or {}).get("name"):
            yield "configmaps", name
    for plugin, spec in volume.items():
        if plugin in _PLUGINS_WITHOUT_SECRET_REFS or not isinstance(spec, dict):
            continue
        for key, field in _VOLUME_SECRET_REFS:
            if name := (spec.get(key) or {}).get(field):
                yield "secrets", name
        if plugin == "azureFile" and spec.get("secretName"):
            yield "secrets", spec["secretName"]


def pod_references(pod: Obj) -> frozenset[Reference]:
    """Every object in the pod's namespace the pod needs its node to read."""
    spec = pod.get("spec") or {}
    pod_name = (pod.get("metadata") or {}).get("name", "")
    refs: set[Reference] = set()
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        for container in spec.get(kind) or []:
            refs.update(_env_references(container))
    for volume in spec.get("volumes") or []:
        refs.update(_volume_references(pod_name, volume))
    for secret in spec.get("imagePullSecrets") or []:
        if secret.get("name"):
            refs.add(("secrets", secret["name"]))
    if account := spec.get("serviceAccountName") or spec.get("serviceAccount"):
        refs.add(("serviceaccounts", account))
    return frozenset(refs)


@dataclass(frozen=True)
class PodEdges:
    node: str
    references: frozenset[Reference]


class NodeGraph:
    """The index: which (node, resource, namespace, name) are referenced, by how many bound pods."""

    def __init__(self) -> None:
        self._pods: dict[tuple[str, str], PodEdges] = {}
        self._counts: dict[tuple[str, str, str, str], int] = {}

    def related(self, node: str, resource: str, namespace: str, name: str) -> bool:
        return (node, resource, namespace, name) in self._counts

    def __len__(self) -> int:
        return len(self._pods)

    def set_pod(self, namespace: str, name: str, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName") or ""
        edges = PodEdges(node, pod_references(pod)) if node else None
        if self._pods.get((namespace, name)) == edges:
            return  # most pod writes are status updates: nothing the graph cares about changed
        self.delete_pod(namespace, name)
        if edges is None:
            return
        self._pods[(namespace, name)] = edges
        for resource, ref_name in edges.references:
            key = (edges.node, resource, namespace, ref_name)
            self._counts[key] = self._counts.get(key, 0) + 1

    def delete_pod(self, namespace: str, name: str) -> None:
        edges = self._pods.pop((namespace, name), None)
        if edges is None:
            return
        for resource, ref_name in edges.references:
            key = (edges.node, resource, namespace, ref_name)
            left = self._counts.get(key, 0) - 1
            if left > 0:
                self._counts[key] = left
            else:
                self._counts.pop(key, None)


class WatchedNodeGraph(StoreFollower):
    """A NodeGraph fed by the pods' watch cache (list, then every change)."""

    def __init__(self, storage: Storage, prefix: str, watch_cache: Callable[[], Awaitable[WatchCache]]) -> None:
        super().__init__(storage, prefix, watch_cache, namespaced=True)
        self.graph = NodeGraph()

    def related(self, node: str, resource: str, namespace: str, name: str) -> bool:
        return self.graph.related(node, resource, namespace, name)

    def _replace_all(self, objects: list[tuple[str, str, Obj]]) -> None:
        fresh = NodeGraph()
        for namespace, name, pod in objects:
            fresh.set_pod(namespace, name, pod)
        self.graph = fresh

    def _put(self, namespace: str, name: str, obj: Obj) -> None:
        self.graph.set_pod(namespace, name, obj)

    def _remove(self, namespace: str, name: str) -> None:
        self.graph.delete_pod(namespace, name)
