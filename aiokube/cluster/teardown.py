"""Leaving nothing behind: every pod sandbox of a node's containerd removed through CRI (so no shim or
container outlives `down`), then the pods' leftover cgroups and any mount left under a node's directories.

The node agent deliberately leaves pods running when it stops (a restarted agent adopts them); tearing a cluster
down is the one place where they must all go.
"""

from __future__ import annotations

import contextlib
import os
import subprocess

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

CGROUP_ROOT = "/sys/fs/cgroup"


def remove_all_pods(socket_path: str, *, timeout: float = 30.0) -> int:
    """Stop and remove every sandbox (and so its containers); returns how many were removed."""
    with grpc.insecure_channel(f"unix://{socket_path}") as channel:
        runtime = api_pb2_grpc.RuntimeServiceStub(channel)
        sandboxes = runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=timeout).items
        for sandbox in sandboxes:
            runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=timeout)
            runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=timeout)
        return len(sandboxes)


def remove_cgroups(prefix: str, *, root: str = CGROUP_ROOT) -> int:
    """rmdir every cgroup named `prefix*` at the top of each hierarchy, deepest first; returns how many went.

    containerd creates the pods' cgroup parents (`/<prefix>/pod<uid>`) and never removes them; once every
    container is gone they are empty and can be removed. Busy ones (a live process inside) stay.
    """
    removed = 0
    if not os.path.isdir(root):
        return 0
    hierarchies = [root, *(os.path.join(root, h) for h in os.listdir(root))]
    for hierarchy in hierarchies:
        if not os.path.isdir(hierarchy):
            continue
        with contextlib.suppress(OSError):
            tops = [os.path.join(hierarchy, d) for d in os.listdir(hierarchy) if d.startswith(prefix)]
            for top in tops:
                for dirpath, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
                    try:
                        os.rmdir(dirpath)
                        removed += 1
                    except OSError:
                        pass
    return removed


def mounts_under(directory: str, *, mountinfo: str = "/proc/self/mounts") -> list[str]:
    """Mount points at or below `directory`, deepest first (the order they must be unmounted in)."""
    directory = os.path.abspath(directory)
    points = []
    with open(mountinfo) as f:
        for line in f:
            # Spaces in mount points are octal-escaped (\040) in /proc/self/mounts.
            point = line.split()[1].encode().decode("unicode_escape")
            if point == directory or point.startswith(directory + "/"):
                points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_under(directory: str) -> int:
    """Lazily unmount whatever a stopped containerd left mounted under its root/state dirs."""
    points = mounts_under(directory)
    for point in points:
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
    return len(points)
