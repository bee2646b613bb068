"""Pod-level cgroups (v1): containerd creates `/<prefix>/pod<uid>` from cgroup_parent but never removes it.

The agent removes a pod's cgroup when it removes the pod; housekeeping finds the ones left behind (an agent
that died mid-removal, a pod removed while a process still held the cgroup) and removes those too.
"""

from __future__ import annotations

import contextlib
import os

CGROUP_ROOT = "/sys/fs/cgroup"
POD_DIR_PREFIX = "pod"


def _hierarchies(root: str) -> list[str]:
    if not os.path.isdir(root):
        return []
    return [os.path.join(root, h) for h in sorted(os.listdir(root)) if os.path.isdir(os.path.join(root, h))]


def remove_pod_cgroup(cgroup_parent: str, root: str = CGROUP_ROOT) -> None:
    """Remove the pod's cgroup (and any empty children) in every hierarchy; busy ones are left for later."""
    for hierarchy in _hierarchies(root):
        top = os.path.join(hierarchy, cgroup_parent.lstrip("/"))
        if not os.path.isdir(top):
            continue
        # Deepest first: a cgroup directory can only go once its children have.
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def pod_cgroup_uids(cgroup_prefix: str, root: str = CGROUP_ROOT) -> set[str]:
    """The pod uids that have a `pod<uid>` cgroup under `/<cgroup_prefix>` in any hierarchy."""
    uids: set[str] = set()
    for hierarchy in _hierarchies(root):
        parent = os.path.join(hierarchy, cgroup_prefix.strip("/"))
        with contextlib.suppress(OSError):  # absent (no pod yet) or not a directory
            uids.update(name.removeprefix(POD_DIR_PREFIX) for name in os.listdir(parent)
                        if name.startswith(POD_DIR_PREFIX) and os.path.isdir(os.path.join(parent, name)))
    return uids
