"""Node network namespaces for multi-node clusters on one machine: nodes reach each other over the cluster's
bridge, two clusters side by side get their own subnet and names, and teardown removes exactly what it made."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from aiokube.cluster import netns

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "busybox")),
    reason="SKIPPED LOUDLY: needs root with ip, nsenter and busybox to build network namespaces")


def ping(node: netns.NodeNetwork, ip: str) -> bool:
    return subprocess.run(["nsenter", f"--net={node.netns_path}", "busybox", "ping", "-c1", "-W1", ip],
                          capture_output=True, timeout=10).returncode == 0


def links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_two_clusters_side_by_side_and_exact_teardown() -> None:
    first, second = uuid.uuid4().hex[:6], uuid.uuid4().hex[:6]
    try:
        a1, a2 = netns.create_node_network(first, 1), netns.create_node_network(first, 2)
        b1 = netns.create_node_network(second, 1)
        assert netns.create_node_network(first, 1) == a1  # idempotent
        assert a1.node_ip.endswith(".11") and a2.node_ip.endswith(".12")
        assert a1.gateway_ip != b1.gateway_ip  # each cluster its own /24
        assert os.path.exists(a1.netns_path) and a1.netns_name == f"aiokube-{first}-node1"
        assert ping(a1, a2.node_ip) and ping(a2, a1.node_ip) and ping(a1, a1.gateway_ip)
        assert netns.list_node_indexes(first) == [1, 2]

        netns.delete_node_network(first, 2)
        assert netns.list_node_indexes(first) == [1] and a2.host_veth not in links()
        netns.delete_cluster_network(first)
        assert netns.list_node_indexes(first) == [] and a1.bridge not in links()
        # the other cluster is untouched
        assert netns.list_node_indexes(second) == [1] and ping(b1, b1.gateway_ip)
    finally:
        netns.delete_cluster_network(first)
        netns.delete_cluster_network(second)
    assert f"akb-{second}" not in links()
    with pytest.raises(netns.NetnsError):
        netns.create_node_network("Bad_ID!", 1)
