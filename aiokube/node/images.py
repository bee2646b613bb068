"""Local images for nodes without a registry: build (cached) OCI tarballs and import them into containerd.

The build scripts live in deploy/images/; a tarball is rebuilt only when missing, so repeated test sessions
and `aiokube up` pay for it once. Imports take OCI archives (named through a base name) and docker-save
archives (named by their own RepoTags).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "images"

# image reference -> (build script, tarball file name, base name for `ctr images import`)
IMAGES: dict[str, tuple[str, str, str]] = {
    "localhost/pause:3.9": ("build-pause.sh", "pause-3.9.tar", "localhost/pause"),
    "localhost/busybox:latest": ("build-busybox.sh", "busybox-latest.tar", "localhost/busybox"),
}


def build_images(out_dir: str) -> dict[str, str]:
    """Build every known image into `out_dir` unless already there; return {image reference: tarball path}."""
    os.makedirs(out_dir, exist_ok=True)
    paths: dict[str, str] = {}
    for ref, (script, file_name, _) in IMAGES.items():
        path = os.path.join(out_dir, file_name)
        if not os.path.exists(path):
            subprocess.run(["bash", str(SCRIPTS_DIR / script), path], check=True, capture_output=True)
        paths[ref] = path
    return paths


def base_name_of(ref: str) -> str:
    return IMAGES[ref][2]


def import_image(socket: str, tar_path: str, *, base_name: str, namespace: str = "k8s.io") -> None:
    """`ctr -a SOCK -n k8s.io images import --base-name NAME TAR` (the CRI plugin sees namespace k8s.io).

    OCI archives take their names from the base name; docker-save archives keep their own RepoTags (ctr
    ignores the base name for them)."""
    result = subprocess.run(
        ["ctr", "-a", socket, "-n", namespace, "images", "import", "--base-name", base_name, tar_path],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ctr images import {tar_path} failed: {result.stderr.strip()}")


def import_all(socket: str, paths: dict[str, str]) -> None:
    for ref, path in paths.items():
        import_image(socket, path, base_name=base_name_of(ref))
