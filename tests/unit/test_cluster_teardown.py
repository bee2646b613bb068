"""Teardown helpers of `aiokube down` (aiokube/cluster/teardown.py) and the cluster id of `up`, on temp dirs."""

from __future__ import annotations

from pathlib import Path

from aiokube.cluster.netns import _CLUSTER_ID, host_veth_name
from aiokube.cluster.teardown import mounts_under, remove_cgroups
from aiokube.cluster.up import cluster_id_for


def test_remove_cgroups_removes_only_the_prefixed_trees_deepest_first(tmp_path: Path) -> None:
    for hierarchy in ("memory", "cpu"):
        (tmp_path / hierarchy / "aiokube-abc123-node-1" / "pod1234" / "c1").mkdir(parents=True)
        (tmp_path / hierarchy / "aiokube-other-node-1" / "pod9").mkdir(parents=True)
    (tmp_path / "aiokube-abc123-node-2").mkdir()  # cgroup v2 style: directly under the root
    removed = remove_cgroups("aiokube-abc123-", root=str(tmp_path))
    assert removed == 7
    assert not list(tmp_path.glob("*/aiokube-abc123-*")) and not (tmp_path / "aiokube-abc123-node-2").exists()
    assert (tmp_path / "memory" / "aiokube-other-node-1" / "pod9").is_dir()


def test_mounts_under_lists_only_that_tree_deepest_first(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "overlay /data/c/nodes/node-1/containerd/rootfs overlay rw 0 0\n"
        "shm /data/c/nodes/node-1/containerd/sandboxes/x/shm tmpfs rw 0 0\n"
        "shm /data/c/nodes/node-1/containerd/sandboxes/x/shm/deeper tmpfs rw 0 0\n"
        "proc /data/c/nodes/node-10 proc rw 0 0\n"  # a sibling with a common prefix is not under node-1
        "tmpfs /data/c/nodes/node-1/with\\040space tmpfs rw 0 0\n")
    points = mounts_under("/data/c/nodes/node-1", mountinfo=str(mounts))
    assert points[0] == "/data/c/nodes/node-1/containerd/sandboxes/x/shm/deeper"
    assert set(points) == {"/data/c/nodes/node-1/containerd/rootfs", "/data/c/nodes/node-1/containerd/sandboxes/x/shm",
                           "/data/c/nodes/node-1/containerd/sandboxes/x/shm/deeper", "/data/c/nodes/node-1/with space"}


def test_cluster_id_is_stable_per_data_dir_and_fits_interface_names(tmp_path: Path) -> None:
    first, second = cluster_id_for(str(tmp_path / "a")), cluster_id_for(str(tmp_path / "b"))
    assert first == cluster_id_for(str(tmp_path / "a" / ".." / "a")) and first != second
    assert _CLUSTER_ID.match(first)
    assert len(host_veth_name(first, 99)) <= 15
