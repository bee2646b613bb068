"""`aiokube image import` of a docker-save archive (the issue's "OCI or docker archive"): an archive built by
hand in docker's format (manifest.json + config + one layer tar) from busybox-static is imported into a private
containerd through the code path the CLI uses (aiokube.node.images.import_image), listed by CRI under its
RepoTag, and runs as a pod under the node agent (stand-in API, fixtures of test_node_runtime.py)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
from pathlib import Path

import pytest

from aiokube.node.images import import_image
from tests.e2e.node_harness import Harness, container_state
from tests.e2e.test_node_runtime import containerd, node, pod  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.containerd, pytest.mark.timeout(120)]

BUSYBOX_STATIC = "/bin/busybox"


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    archive.addfile(info, io.BytesIO(data))


def build_layer() -> bytes:
    """One uncompressed layer: busybox-static as /bin/busybox plus the `sh` and `echo` applet links."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as layer:
        for directory in ("bin", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            layer.addfile(info)
        _add_bytes(layer, "bin/busybox", Path(BUSYBOX_STATIC).read_bytes(), 0o755)
        for applet in ("sh", "echo", "cat"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            layer.addfile(link)
    return buffer.getvalue()


def build_docker_archive(path: Path, repo_tag: str) -> None:
    """`docker save` layout: <layer dir>/layer.tar, <config digest>.json, manifest.json and repositories."""
    layer = build_layer()
    diff_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin", "BUILT_AS=docker-archive"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created_by": "hand-built for aiokube tests"}],
    }).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    repository, tag = repo_tag.rsplit(":", 1)
    with tarfile.open(path, "w") as archive:
        _add_bytes(archive, f"{diff_id}/layer.tar", layer)
        _add_bytes(archive, config_name, config)
        _add_bytes(archive, "manifest.json", json.dumps(
            [{"Config": config_name, "RepoTags": [repo_tag], "Layers": [f"{diff_id}/layer.tar"]}]).encode())
        _add_bytes(archive, "repositories", json.dumps({repository: {tag: diff_id}}).encode())


async def test_docker_archive_imports_lists_and_runs(node: Harness, tmp_path: Path) -> None:  # noqa: F811
    reference = f"localhost/dockerbox-{uuid.uuid4().hex[:8]}:v1"
    # Named unlike its RepoTag: the base name `aiokube image import` derives from the file must not rename it.
    archive = tmp_path / "saved.tar"
    build_docker_archive(archive, reference)

    import_image(node.config.containerd_socket, str(archive), base_name="localhost/saved")
    try:
        listed = {tag: image for image in await node.runtime.list_images() for tag in image.repo_tags}
        assert reference in listed, sorted(listed)
        assert listed[reference].size > 0

        node.api.add_pod(pod("from-docker", [{
            "name": "main", "image": reference, "imagePullPolicy": "Never",
            "command": ["sh", "-c", "echo $BUILT_AS > /tmp/out; cat /tmp/out"]}], restartPolicy="Never"),
            node.config.node_name)
        await node.wait_for(lambda: node.status("from-docker").get("phase") == "Succeeded", what="Succeeded")
        main = container_state(node.status("from-docker"), "main")
        assert main["state"]["terminated"]["exitCode"] == 0
        assert main["imageID"], main
    finally:
        await node.runtime.remove_image(reference)

