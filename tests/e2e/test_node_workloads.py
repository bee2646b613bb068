"""More of the node agent on a real containerd (stand-in API, fixtures of test_node_runtime.py): projected
volumes, workingDir, privileged, SIGKILL after the grace period, the image-policy reasons and messages, and
unused-image garbage collection through CRI ListImages/RemoveImage."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from aiokube.node.images import SCRIPTS_DIR, import_image
from kubelet.image_gc import ImageGarbageCollector, ImageGCPolicy
from tests.e2e.node_harness import Harness, b64, container_state, exists
from tests.e2e.test_node_runtime import containerd, node, pod, running  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.containerd, pytest.mark.timeout(120)]


def waiting(h: Harness, name: str) -> dict:
    return dict(container_state(h.status(name), "main").get("state", {}).get("waiting", {}))


async def test_projected_volume_working_dir_and_privileged(node: Harness) -> None:  # noqa: F811
    node.api.add("configmaps", {"metadata": {"name": "proj-cm", "namespace": "default"}, "data": {"color": "blue"}})
    node.api.add("secrets", {"metadata": {"name": "proj-sec", "namespace": "default"},
                             "data": {"token": b64("t0ken")}})
    spec = pod("proj", [
        {"name": "main", "command": ["sleep", "3600"], "workingDir": "/srv/app",
         "securityContext": {"privileged": True},
         "volumeMounts": [{"name": "all", "mountPath": "/etc/all"}]},
        {"name": "plain", "command": ["sleep", "3600"]},
    ], volumes=[{"name": "all", "projected": {"sources": [
        {"configMap": {"name": "proj-cm", "items": [{"key": "color", "path": "cm/color"}]}},
        {"secret": {"name": "proj-sec"}},
        {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                                   {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
    ]}}])
    spec["metadata"]["labels"] = {"tier": "gold"}
    node.api.add_pod(spec, node.config.node_name)
    await node.wait_for(lambda: running(node, "proj"), what="proj Running")
    main = container_state(node.status("proj"), "main")["containerID"].removeprefix("containerd://")
    plain = container_state(node.status("proj"), "plain")["containerID"].removeprefix("containerd://")

    async def sh(cid: str, script: str) -> str:
        r = await node.runtime.exec_sync(cid, ["sh", "-c", script], 5)
        assert r.exit_code == 0, r.stderr
        return str(r.stdout.decode())

    files = await sh(main, "cat /etc/all/cm/color; echo; cat /etc/all/token; echo; cat /etc/all/name; echo; "
                           "cat /etc/all/labels")
    assert files.split("\n") == ["blue", "t0ken", "proj", 'tier="gold"']
    assert (await sh(main, "pwd")).strip() == "/srv/app"  # workingDir, created by the runtime
    assert (await sh(plain, "pwd")).strip() == "/"

    def cap_eff(status: str) -> int:
        return int(next(line for line in status.splitlines() if line.startswith("CapEff:")).split()[1], 16)

    privileged_caps = cap_eff(await sh(main, "cat /proc/self/status"))
    default_caps = cap_eff(await sh(plain, "cat /proc/self/status"))
    assert privileged_caps & (1 << 21)  # CAP_SYS_ADMIN: only a privileged container has it
    assert not default_caps & (1 << 21) and default_caps != privileged_caps
    # Privileged containers see the host's devices, not the default minimal /dev.
    assert "loop0" in await sh(main, "ls /dev") or "kmsg" in await sh(main, "ls /dev")


async def test_container_ignoring_sigterm_is_killed_after_the_grace_period(node: Harness) -> None:  # noqa: F811
    spec = pod("stubborn", [{"name": "main", "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]}],
               terminationGracePeriodSeconds=2)
    node.api.add_pod(spec, node.config.node_name)
    await node.wait_for(lambda: running(node, "stubborn"), what="Running")
    started = time.monotonic()
    node.api.mark_deleted("stubborn", 2)
    await node.wait_for(lambda: "stubborn" in node.api.deleted, within=15, what="pod deleted from the API")
    took = time.monotonic() - started
    assert 2.0 <= took < 7, f"stop took {took:.1f}s (grace 2 s, then SIGKILL)"
    final = container_state(node.api.status_writes[-1], "main")["state"]["terminated"]
    assert final["exitCode"] == 137  # 128 + SIGKILL


async def test_image_policy_reasons_and_messages(node: Harness) -> None:  # noqa: F811
    node.api.add_pod(pod("never", [{"name": "main", "image": "localhost/absent:1", "imagePullPolicy": "Never"}]),
                     node.config.node_name)
    node.api.add_pod(pod("pullerr", [{"name": "main", "image": "localhost/absent:2"}]), node.config.node_name)
    node.api.add_pod(pod("always", [{"name": "main", "command": ["sleep", "3600"],
                                     "imagePullPolicy": "Always"}]), node.config.node_name)
    await node.wait_for(lambda: waiting(node, "never").get("reason") == "ErrImageNeverPull", what="never")
    assert waiting(node, "never")["message"] == (
        'Container image "localhost/absent:1" is not present with pull policy of Never')
    # ErrImagePull lasts only until the next sync, which reports ImagePullBackOff while the back-off holds (as
    # the kubelet does), so a poll of the current state can miss it: look for it among the status writes.
    def pull_errors() -> list[dict]:
        states = [s.get("state", {}).get("waiting", {}) for w in node.api.status_writes
                  for s in w.get("containerStatuses", [])]
        return [s for s in states if "localhost/absent:2" in s.get("message", "")]

    await node.wait_for(lambda: any(s["reason"] == "ErrImagePull" for s in pull_errors()), what="ErrImagePull")
    assert next(s for s in pull_errors() if s["reason"] == "ErrImagePull")["message"].startswith(
        'Failed to pull image "localhost/absent:2": ')
    await node.wait_for(lambda: waiting(node, "pullerr").get("reason") in ("ErrImagePull", "ImagePullBackOff"),
                        what="pull still failing")
    # Always with no registry: the pull is attempted and fails, the local copy is used (image_puller.py).
    await node.wait_for(lambda: running(node, "always"), what="Always pod Running from the local copy")


def build_unique_image(directory: Path) -> tuple[str, str]:
    """A tiny one-layer image whose content (hence id) no other image shares: (tarball, reference)."""
    rootfs = directory / "rootfs"
    rootfs.mkdir(parents=True)
    (rootfs / "marker").write_text(uuid.uuid4().hex)
    tar = str(directory / "victim.tar")
    subprocess.run(["bash", str(SCRIPTS_DIR / "oci-image.sh"), str(rootfs), "1", tar, "/marker"], check=True,
                   capture_output=True)
    return tar, "localhost/gc-victim:1"


async def test_image_gc_removes_only_unused_images_under_disk_pressure(node: Harness,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    node.api.add_pod(pod("user", [{"name": "main", "command": ["sleep", "3600"]}]), node.config.node_name)
    await node.wait_for(lambda: running(node, "user"), what="busybox in use")
    tar, victim = build_unique_image(tmp_path)
    import_image(node.config.containerd_socket, tar, base_name="localhost/gc-victim")
    assert await node.runtime.image_status(victim) is not None

    async def pressure() -> tuple[int, int]:  # 90 % used: above the 85 % high threshold
        return 100_000_000_000, 10_000_000_000

    gc = ImageGarbageCollector(node.runtime, ImageGCPolicy(min_age=0), fs_stats=pressure)
    removed = await gc.garbage_collect()
    assert await node.runtime.image_status(victim) is None
    assert len(removed) == 1
    # Kept: the sandbox image and the image a container uses (the running pod's busybox).
    assert await node.runtime.image_status("localhost/pause:3.9") is not None
    assert await node.runtime.image_status("localhost/busybox:latest") is not None


def plant_cgroups(directories: list[str]) -> None:
    for directory in directories:
        os.makedirs(os.path.join(directory, "ctr"))


def unplant_cgroups(directories: list[str]) -> None:
    for directory in directories:
        for path in (os.path.join(directory, "ctr"), directory):
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(path)


async def test_housekeeping_removes_leftover_pod_cgroups_only(node: Harness) -> None:  # noqa: F811
    node.api.add_pod(pod("owner", [{"name": "main", "command": ["sleep", "3600"]}]), node.config.node_name)
    await node.wait_for(lambda: running(node, "owner"), what="owner Running")
    live_uid = node.api.pod("owner")["metadata"]["uid"]  # type: ignore[index]
    # A pod cgroup no sandbox and no API pod owns, as an agent killed mid-removal leaves it: planted in the real
    # cgroupfs (mkdir there creates a cgroup) in two hierarchies, each with a child like a container's.
    prefix = node.config.cgroup_prefix
    planted = [f"/sys/fs/cgroup/{h}/{prefix}/pod{uuid.uuid4()}" for h in ("memory", "pids")]
    plant_cgroups(planted)
    try:
        await node.kubelet.housekeeping()
        assert not any(exists(directory) for directory in planted)
        assert exists(f"/sys/fs/cgroup/memory/{prefix}/pod{live_uid}")  # the running pod's cgroup stays
        assert running(node, "owner")
    finally:
        unplant_cgroups(planted)
