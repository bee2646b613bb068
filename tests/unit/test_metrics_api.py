"""metrics.k8s.io objects built from node agents' /stats/summary (apiserver/metrics_api.py); the served API is
exercised with the real `kubectl top` in tests/e2e/test_cluster_multinode.py."""

from __future__ import annotations

from apiserver import metrics_api
from apiserver.routes import discovery

NODE = {"metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "172.30.0.11"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}
POD_STATS = {
    "podRef": {"name": "web", "namespace": "default", "uid": "u1"},
    "cpu": {"time": "2026-01-01T00:00:00Z", "usageNanoCores": 3_000_000},
    "memory": {"workingSetBytes": 3 * 1024 * 1024},
    "containers": [
        {"name": "a", "cpu": {"usageNanoCores": 1_000_000}, "memory": {"workingSetBytes": 1024 * 1024}},
        {"name": "b", "cpu": {"usageNanoCores": 2_000_000}, "memory": {"workingSetBytes": 2 * 1024 * 1024 + 5}},
    ],
}


def test_node_metrics_use_the_agents_memory_and_the_pods_cpu() -> None:
    summary = {"node": {"memory": {"time": "2026-01-01T00:00:00Z", "workingSetBytes": 2048 * 1024}},
               "pods": [POD_STATS, {**POD_STATS, "cpu": {"usageNanoCores": 500}}]}
    metrics = metrics_api.node_metrics(NODE, summary)
    assert metrics["metadata"]["name"] == "node-1"
    assert metrics["metadata"]["labels"] == {"kubernetes.io/hostname": "node-1"}
    assert metrics["usage"] == {"cpu": "3000500n", "memory": "2048Ki"}
    assert metrics["timestamp"] == "2026-01-01T00:00:00Z" and metrics["window"]


def test_pod_metrics_list_every_container_in_quantities() -> None:
    pod = {"metadata": {"name": "web", "namespace": "default", "uid": "u1", "labels": {"app": "web"}}}
    metrics = metrics_api.pod_metrics(pod, POD_STATS)
    assert metrics["metadata"] == {**metrics["metadata"], "name": "web", "namespace": "default",
                                   "labels": {"app": "web"}}
    assert metrics["containers"] == [{"name": "a", "usage": {"cpu": "1000000n", "memory": "1024Ki"}},
                                     {"name": "b", "usage": {"cpu": "2000000n", "memory": "2048Ki"}}]


def test_discovery_lists_the_metrics_group() -> None:
    groups = {g["name"]: g for g in discovery.api_group_list()["groups"]}
    assert groups["metrics.k8s.io"]["preferredVersion"] == {"groupVersion": "metrics.k8s.io/v1beta1",
                                                            "version": "v1beta1"}
    assert metrics_api._node_address(NODE) == "http://172.30.0.11:10250"
