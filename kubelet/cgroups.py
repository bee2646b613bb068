"""Pod-level cgroups (v1): containerd creates `/<prefix>/pod<uid>` from cgroup_parent but never removes it."""

from __future__ import annotations

import contextlib
import os

CGROUP_ROOT = "/sys/fs/cgroup"


def remove_pod_cgroup(cgroup_parent: str) -> None:
    """Remove the pod's cgroup (and any empty children) in every hierarchy; busy ones are left for later."""
    if not os.path.isdir(CGROUP_ROOT):
        return
    for hierarchy in os.listdir(CGROUP_ROOT):
        top = os.path.join(CGROUP_ROOT, hierarchy, cgroup_parent.lstrip("/"))
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)

