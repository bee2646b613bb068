"""The CRI labels and annotations that tie runtime objects back to pods, so a restarted agent adopts them.

Labels identify (pod uid/name/namespace, container name) and are filterable in List calls; annotations carry
what the agent must remember about a container across its own restarts (restart count, spec hash, grace).
"""

from __future__ import annotations

import hashlib
import json

from aiokube.api.types import Obj

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
MANAGED_BY = "aiokube.io/managed-by"  # value: the node name, so two agents on one containerd never fight

CONTAINER_HASH = "io.kubernetes.container.hash"
RESTART_COUNT = "io.kubernetes.container.restartCount"
TERMINATION_GRACE = "io.kubernetes.pod.terminationGracePeriod"
INIT_CONTAINER = "aiokube.io/init-container"


def sandbox_labels(pod: Obj, node_name: str) -> dict[str, str]:
    meta = pod["metadata"]
    return {
        POD_NAME: meta["name"],
        POD_NAMESPACE: meta.get("namespace", "default"),
        POD_UID: meta["uid"],
        MANAGED_BY: node_name,
    }


def container_labels(pod: Obj, container_name: str, node_name: str) -> dict[str, str]:
    return {**sandbox_labels(pod, node_name), CONTAINER_NAME: container_name}


def container_hash(container: Obj) -> str:
    """A stable hash of a container's spec: a changed spec (e.g. a new image) means kill and recreate."""
    # resources are updated in place by the real kubelet; we still include everything but that.
    spec = {k: v for k, v in container.items() if k != "resources"}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
