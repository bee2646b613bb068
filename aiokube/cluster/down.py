"""`aiokube down`: stop everything `up` started, newest first; `--purge` also removes the data dir."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from aiokube.cluster.state import ClusterState


def _remove_node_leftovers(state: ClusterState, progress: Callable[[str], None]) -> None:
    """After every process stopped: mounts under the nodes' dirs, the pods' cgroups, the cluster's network
    (namespaces, veths, bridge, host routes)."""
    from aiokube.cluster.teardown import remove_cgroups, unmount_under

    for node in state.nodes:
        unmount_under(node.root_dir)
    if state.cluster_id:
        remove_cgroups(f"aiokube-{state.cluster_id}-")
        if shutil.which("ip") and os.geteuid() == 0:
            from aiokube.cluster.netns import delete_cluster_network

            # Also when `up` failed before recording a node: the function only removes what exists.
            progress("removing the node network namespaces and routes")
            delete_cluster_network(state.cluster_id)


def down(data_dir: str, *, purge: bool = False, progress: Callable[[str], None] = print) -> bool:
    """Returns False when there was no cluster recorded in data_dir."""
    data_dir = os.path.abspath(data_dir)
    state = ClusterState.load(data_dir)
    if state is None:
        return False
    by_name = {p.name: p for p in state.processes}
    # Node agents first (they must not restart pods while we tear down), then the pods themselves through
    # CRI, then containerd, then the control plane, etcd last.
    for p in state.processes:
        if p.name.startswith("kubelet"):
            progress(f"stopping {p.name}")
            p.stop()
    if state.nodes:
        from aiokube.cluster.teardown import remove_all_pods

        for node in state.nodes:
            containerd = by_name.get(f"containerd-{node.name}")
            if containerd is not None and containerd.alive():
                progress(f"removing the pods of {node.name}")
                remove_all_pods(node.containerd_socket)
    for p in reversed(state.processes):
        if not p.name.startswith("kubelet"):
            progress(f"stopping {p.name}")
            p.stop()
    _remove_node_leftovers(state, progress)
    if purge:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        state.save()
    return True
