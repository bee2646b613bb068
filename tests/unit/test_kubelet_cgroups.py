"""Finding and removing pod cgroups under the agent's prefix, on a directory tree shaped like cgroupfs (v1)."""

from __future__ import annotations

from pathlib import Path

from kubelet.cgroups import pod_cgroup_uids, remove_pod_cgroup


def plant(root: Path, *relative: str) -> None:
    for rel in relative:
        (root / rel).mkdir(parents=True, exist_ok=True)


def test_pod_cgroups_are_found_in_every_hierarchy_under_the_prefix_only(tmp_path: Path) -> None:
    plant(tmp_path, "memory/node-a/poduid-1/ctr", "cpu/node-a/poduid-2", "pids/node-a/not-a-pod",
          "memory/node-b/poduid-3")
    (tmp_path / "cpu/node-a/podfile").write_text("")  # a file, not a cgroup
    assert pod_cgroup_uids("node-a", str(tmp_path)) == {"uid-1", "uid-2"}
    assert pod_cgroup_uids("/node-b", str(tmp_path)) == {"uid-3"}
    assert pod_cgroup_uids("absent", str(tmp_path)) == set()
    assert pod_cgroup_uids("node-a", str(tmp_path / "no-such-root")) == set()


def test_remove_takes_the_pod_cgroup_and_its_children_everywhere_but_leaves_the_rest(tmp_path: Path) -> None:
    plant(tmp_path, "memory/node-a/poduid-1/ctr1", "memory/node-a/poduid-1/ctr2", "cpu/node-a/poduid-1",
          "memory/node-a/poduid-2")
    remove_pod_cgroup("/node-a/poduid-1", str(tmp_path))
    assert not (tmp_path / "memory/node-a/poduid-1").exists()
    assert not (tmp_path / "cpu/node-a/poduid-1").exists()
    assert (tmp_path / "memory/node-a/poduid-2").is_dir()


def test_a_busy_cgroup_is_left_for_a_later_round(tmp_path: Path) -> None:
    # On cgroupfs rmdir fails while processes remain; a non-empty directory fails the same way here.
    plant(tmp_path, "memory/node-a/poduid-1/ctr")
    (tmp_path / "memory/node-a/poduid-1/ctr/tasks").write_text("42\n")
    remove_pod_cgroup("/node-a/poduid-1", str(tmp_path))  # must not raise
    assert (tmp_path / "memory/node-a/poduid-1/ctr").is_dir()
