"""Writing a kubeconfig that kubectl and aiokube.client both read."""

from __future__ import annotations

import os

import yaml


def write_kubeconfig(path: str, server: str, *, cluster: str = "aiokube", user: str = "admin") -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server}}],
        "users": [{"name": user, "user": {}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user, "namespace": "default"}}],
        "current-context": cluster,
        "preferences": {},
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
