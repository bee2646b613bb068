"""Pod volumes on the node's disk and the CRI mounts that expose them to containers.

Layout: `<root>/pods/<uid>/volumes/<name>`. emptyDir (medium Memory is a tmpfs), configMap, secret,
downwardAPI and projected are directories the agent writes (refreshed on every sync, so updated ConfigMaps
reach running pods); hostPath is the host path itself. `teardown` unmounts and removes everything of a pod.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess

from aiokube.api.quantity import int_value
from aiokube.api.types import Obj
from kubelet.cri import pb
from kubelet.env import ContainerConfigError, SourceCache, field_ref_value, resource_field_value

DEFAULT_MODE = 0o644


class VolumeManager:
    def __init__(self, root_dir: str, node_allocatable: dict[str, str] | None = None) -> None:
        self.pods_dir = os.path.join(os.path.abspath(root_dir), "pods")
        self.node_allocatable = node_allocatable or {}

    def pod_dir(self, uid: str) -> str:
        return os.path.join(self.pods_dir, uid)

    def volume_dir(self, uid: str, name: str) -> str:
        return os.path.join(self.pod_dir(uid), "volumes", name)

    async def setup(self, pod: Obj, sources: SourceCache) -> dict[str, str]:
        """Make every volume of the pod ready; return {volume name: host path}."""
        uid = pod["metadata"]["uid"]
        paths: dict[str, str] = {}
        for vol in pod.get("spec", {}).get("volumes") or []:
            name = vol["name"]
            target = self.volume_dir(uid, name)
            if "hostPath" in vol:
                paths[name] = _host_path(vol["hostPath"])
            elif "emptyDir" in vol:
                _empty_dir(target, vol["emptyDir"] or {})
                paths[name] = target
            elif "configMap" in vol or "secret" in vol:
                resource, src = ("configmaps", vol["configMap"]) if "configMap" in vol else ("secrets", vol["secret"])
                obj_name = src.get("name") or src.get("secretName", "")
                files = await _object_files(sources, resource, obj_name, src)
                _write_files(target, files, src.get("defaultMode", DEFAULT_MODE))
                paths[name] = target
            elif "downwardAPI" in vol:
                files = self._downward_files(pod, vol["downwardAPI"].get("items") or [])
                _write_files(target, files, vol["downwardAPI"].get("defaultMode", DEFAULT_MODE))
                paths[name] = target
            elif "projected" in vol:
                files = {}
                for source in vol["projected"].get("sources") or []:
                    if "configMap" in source:
                        files.update(await _object_files(sources, "configmaps", source["configMap"]["name"],
                                                         source["configMap"]))
                    elif "secret" in source:
                        files.update(await _object_files(sources, "secrets", source["secret"]["name"],
                                                         source["secret"]))
                    elif "downwardAPI" in source:
                        files.update(self._downward_files(pod, source["downwardAPI"].get("items") or []))
                    # serviceAccountToken: no token issuer yet; the projected dir simply lacks the token.
                _write_files(target, files, vol["projected"].get("defaultMode", DEFAULT_MODE))
                paths[name] = target
            else:
                kind = next((k for k in vol if k != "name"), "?")
                raise ContainerConfigError(f"volume {name!r}: type {kind} is not supported on this node")
        return paths

    def _downward_files(self, pod: Obj, items: list[Obj]) -> dict[str, str]:
        files: dict[str, str] = {}
        for item in items:
            if "fieldRef" in item:
                files[item["path"]] = field_ref_value(pod, item["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in item:
                ref = item["resourceFieldRef"]
                files[item["path"]] = resource_field_value(pod, ref.get("containerName", ""), ref,
                                                           self.node_allocatable)
        return files

    def teardown(self, uid: str) -> None:
        pod_dir = self.pod_dir(uid)
        if not os.path.isdir(pod_dir):
            return
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1] for line in f]
        for mount_point in sorted((m for m in mounts if m.startswith(pod_dir + "/")), key=len, reverse=True):
            subprocess.run(["umount", mount_point], capture_output=True)
        shutil.rmtree(pod_dir, ignore_errors=True)

    def known_pod_uids(self) -> list[str]:
        return os.listdir(self.pods_dir) if os.path.isdir(self.pods_dir) else []


def container_mounts(container: Obj, volume_paths: dict[str, str]) -> list[pb.Mount]:
    mounts: list[pb.Mount] = []
    for vm in container.get("volumeMounts") or []:
        host_path = volume_paths.get(vm["name"])
        if host_path is None:
            raise ContainerConfigError(f"volumeMount {vm['name']!r} refers to no volume of the pod")
        sub_path = vm.get("subPath")
        if sub_path:
            if os.path.isabs(sub_path) or ".." in sub_path.split("/"):
                raise ContainerConfigError(f"subPath {sub_path!r} must be a relative path inside the volume")
            host_path = os.path.join(host_path, sub_path)
            if not os.path.exists(host_path):
                os.makedirs(host_path, exist_ok=True)
        mounts.append(pb.Mount(container_path=vm["mountPath"], host_path=host_path,
                               readonly=bool(vm.get("readOnly"))))
    return mounts


def _host_path(spec: Obj) -> str:
    path = spec["path"]
    kind = spec.get("type", "")
    if kind == "DirectoryOrCreate":
        os.makedirs(path, mode=0o755, exist_ok=True)
    elif kind == "FileOrCreate" and not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "a").close()
    elif kind in ("Directory", "File", "Socket") and not os.path.exists(path):
        raise ContainerConfigError(f"hostPath type check failed: {path} does not exist")
    return path


def _empty_dir(target: str, spec: Obj) -> None:
    if os.path.isdir(target):
        return
    os.makedirs(target, mode=0o777, exist_ok=True)
    os.chmod(target, 0o777)  # emptyDir is world-writable, so non-root containers can use it
    if spec.get("medium") == "Memory":
        options = "mode=0777"
        if spec.get("sizeLimit"):
            options += f",size={int_value(spec['sizeLimit'])}"
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", target], capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise ContainerConfigError(f"emptyDir tmpfs mount failed: {result.stderr.strip()}")


async def _object_files(sources: SourceCache, resource: str, name: str, src: Obj) -> dict[str, str]:
    data = await sources.data(resource, name, optional=bool(src.get("optional")))
    if data is None:
        return {}
    items = src.get("items")
    if not items:
        return dict(data)
    files: dict[str, str] = {}
    for item in items:
        if item["key"] not in data:
            if src.get("optional"):
                continue
            raise ContainerConfigError(f"configmap/secret {name}: key {item['key']!r} not found")
        files[item["path"]] = data[item["key"]]
    return files


def _write_files(target: str, files: dict[str, str], mode: int) -> None:
    """Write the volume's files, removing ones no longer present; unchanged files are not rewritten."""
    os.makedirs(target, exist_ok=True)
    wanted = {os.path.normpath(p) for p in files}
    for dirpath, _, filenames in os.walk(target):
        for fn in filenames:
            rel = os.path.relpath(os.path.join(dirpath, fn), target)
            if rel not in wanted:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(dirpath, fn))
    for rel, content in files.items():
        path = os.path.join(target, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with contextlib.suppress(OSError), open(path) as f:
            if f.read() == content:
                continue
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
