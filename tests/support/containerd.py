"""A private containerd for tests: own dirs, socket, bridge and pod CIDR; images imported; everything removed.

`start_test_containerd()` returns a `PrivateContainerd`; `cleanup()` removes every sandbox (which tears down CNI
and its iptables rules), stops containerd by PID, unmounts what is left under its dirs, deletes the bridge and
the pod cgroups, then the directory.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from cri_api.v1 import api_pb2 as pb
from cri_api.v1 import api_pb2_grpc as pb_grpc

from aiokube.node.containerd import ContainerdConfig, ContainerdProcess, start_containerd, stop_containerd
from aiokube.node.images import build_images, import_all

IMAGE_CACHE_DIR = os.path.join(tempfile.gettempdir(), "aiokube-test-images")
CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass
class PrivateContainerd:
    config: ContainerdConfig
    process: ContainerdProcess

    @property
    def socket(self) -> str:
        return self.process.socket

    @property
    def root_dir(self) -> str:
        return self.config.root_dir

    def remove_all_pods(self) -> None:
        """Stop and remove every sandbox (and so every container) through CRI."""
        with grpc.insecure_channel(f"unix://{self.socket}") as channel:
            runtime = pb_grpc.RuntimeServiceStub(channel)
            sandboxes = runtime.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items
            for sandbox in sandboxes:
                with contextlib.suppress(grpc.RpcError):
                    runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=60)
                with contextlib.suppress(grpc.RpcError):
                    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=60)

    def cleanup(self) -> None:
        if self.process.alive():
            with contextlib.suppress(grpc.RpcError):
                self.remove_all_pods()
        stop_containerd(self.process)
        _unmount_under(os.path.abspath(self.root_dir))
        subprocess.run(["ip", "link", "delete", self.config.bridge_name], capture_output=True)
        _remove_cgroups(self.config.cgroup_prefix)
        shutil.rmtree(self.root_dir, ignore_errors=True)


def _unmount_under(path: str) -> None:
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f]
    for mount_point in sorted((m for m in mounts if m.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount_point], capture_output=True)


def _remove_cgroups(prefix: str) -> None:
    """Remove /<prefix> in every cgroup v1 hierarchy, deepest first (rmdir only succeeds on empty cgroups)."""
    for hierarchy in os.listdir(CGROUP_ROOT):
        top = os.path.join(CGROUP_ROOT, hierarchy, prefix)
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def start_test_containerd(*, pod_cidr: str | None = None) -> PrivateContainerd:
    tag = f"{random.randrange(16**6):06x}"
    root_dir = tempfile.mkdtemp(prefix="aiokube-ctrd-")
    config = ContainerdConfig(
        root_dir=root_dir,
        # A random /24 in 10.200-10.239 so concurrent test sessions and `aiokube up` (10.244.x) do not collide.
        pod_cidr=pod_cidr or f"10.{random.randrange(200, 240)}.{random.randrange(256)}.0/24",
        cgroup_prefix=f"aiokube-test-{tag}",
        bridge_name=f"aikt{tag}",
    )
    process = start_containerd(config)
    node = PrivateContainerd(config, process)
    try:
        import_all(process.socket, build_images(IMAGE_CACHE_DIR))
    except BaseException:
        node.cleanup()
        raise
    return node


def containerd_fixture() -> Iterator[PrivateContainerd]:
    """Body of a session-scoped pytest fixture: one private containerd, cleaned up at the end."""
    for tool in ("containerd", "runc", "ctr", "umoci"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: run `bash deploy/install.sh`")
    node = start_test_containerd()
    try:
        yield node
    finally:
        node.cleanup()
