"""Node lifecycle (unreachable taint, eviction, recovery), pod CIDRs, Endpoints/EndpointSlices, and leader
election handover, against real etcd + API server with controller-managers in-process (short timeouts)."""

from __future__ import annotations

import asyncio
import functools
import uuid
from typing import Any

import pytest

from aiokube.client import ApiClient
from controllers.manager import LEASE_NAME, LEASE_NAMESPACE, ManagerOptions
from controllers.nodelifecycle import UNREACHABLE
from controllers.testing import eventually, mark_pod_ready, running_manager
from controllers.timeutil import format_micro_time, format_time, system_clock

pytestmark = pytest.mark.etcd


async def ensure_namespace(client: ApiClient, name: str) -> None:
    try:
        await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    except Exception as err:  # already there
        if getattr(err, "code", None) != 409:
            raise


async def post_heartbeat(client: ApiClient, node: str) -> None:
    """What a kubelet does: Ready=True in node status, and a renewed Lease."""
    now = system_clock()
    current = await client.get("nodes", node)
    current["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                         "message": "kubelet is posting ready status",
                                         "lastHeartbeatTime": format_time(now),
                                         "lastTransitionTime": format_time(now)}]}
    await client.update_status("nodes", current)
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": node, "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": format_micro_time(now)}}
    try:
        existing = await client.get("leases", node, namespace="kube-node-lease")
        existing["spec"] = lease["spec"]
        await client.update("leases", existing)
    except Exception as err:
        if getattr(err, "code", None) != 404:
            raise
        await client.create("leases", lease, namespace="kube-node-lease")


async def test_unreachable_node_is_tainted_its_pods_evicted_and_recovers(client: ApiClient, namespace: str) -> None:
    await ensure_namespace(client, "kube-node-lease")
    await client.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    await post_heartbeat(client, "n1")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "victim"},
           "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox:1"}],
                    "tolerations": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                                     "tolerationSeconds": 1}]}}
    await client.create("pods", pod, namespace=namespace)
    stays = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stays"},
             "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox:1"}],
                      "tolerations": [{"operator": "Exists"}]}}
    await client.create("pods", stays, namespace=namespace)
    options = ManagerOptions(leader_elect=False, controllers=["nodelifecycle", "nodeipam"],
                             node_monitor_grace_period=2.0, node_monitor_period=0.3)
    async with running_manager(client, options):
        async def cidr() -> str:
            return str((await client.get("nodes", "n1")).get("spec", {}).get("podCIDR") or "")

        assert await eventually(cidr) == "10.244.0.0/24"

        async def unreachable() -> bool:
            node = await client.get("nodes", "n1")
            ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
            taints = [t["key"] for t in node.get("spec", {}).get("taints") or []]
            return ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown" and UNREACHABLE in taints

        await eventually(unreachable, within=8)

        async def evicted() -> bool:
            names = {p["metadata"]["name"] for p in (await client.list("pods", namespace=namespace))["items"]
                     if not p["metadata"].get("deletionTimestamp")}
            return names == {"stays"}

        await eventually(evicted, within=6)
        await post_heartbeat(client, "n1")

        async def recovered() -> bool:
            node = await client.get("nodes", "n1")
            return not node.get("spec", {}).get("taints")

        await eventually(recovered, within=5)


async def test_second_node_gets_next_cidr(client: ApiClient) -> None:
    for name in ("a", "b"):
        await client.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    async with running_manager(client, ManagerOptions(leader_elect=False, controllers=["nodeipam"])):
        async def both() -> set[str]:
            nodes = (await client.list("nodes"))["items"]
            cidrs = {n.get("spec", {}).get("podCIDR") for n in nodes}
            return cidrs if None not in cidrs else set()

        assert await eventually(both) == {"10.244.0.0/24", "10.244.1.0/24"}


async def test_a_deleted_nodes_cidr_is_released_for_reuse(client: ApiClient) -> None:
    async with running_manager(client, ManagerOptions(leader_elect=False, controllers=["nodeipam"])):
        async def cidr_of(name: str) -> str:
            return str((await client.get("nodes", name)).get("spec", {}).get("podCIDR") or "")

        for name in ("a", "b"):
            await client.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
            await eventually(functools.partial(cidr_of, name))
        assert [await cidr_of("a"), await cidr_of("b")] == ["10.244.0.0/24", "10.244.1.0/24"]
        await client.delete("nodes", "a")
        await client.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "c"}})
        # The lowest free /24 is a's again: deleting the Node gave its CIDR back.
        assert await eventually(lambda: cidr_of("c")) == "10.244.0.0/24"
        assert await cidr_of("b") == "10.244.1.0/24"  # never moved


async def test_endpoints_and_slices_follow_pod_readiness(client: ApiClient, namespace: str) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}
    await client.create("services", service, namespace=namespace)
    for i in range(2):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"web-{i}", "labels": {"app": "web"}},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox:1",
                                                          "ports": [{"name": "http", "containerPort": 8080 + i}]}]}}
        created = await client.create("pods", pod, namespace=namespace)
        await mark_pod_ready(client, created, ready=(i == 0), ip=f"10.244.0.{10 + i}")
    options = ManagerOptions(leader_elect=False, controllers=["endpoints", "endpointslice"])
    async with running_manager(client, options):
        async def endpoints() -> Any:
            try:
                return (await client.get("endpoints", "web", namespace=namespace)).get("subsets")
            except Exception:
                return None

        subsets = await eventually(endpoints)
        by_ip = {}
        for subset in subsets:
            for field in ("addresses", "notReadyAddresses"):
                for address in subset.get(field, []):
                    by_ip[address["ip"]] = (field, subset["ports"][0]["port"], address["targetRef"]["name"],
                                            address.get("nodeName"))
        assert by_ip == {"10.244.0.10": ("addresses", 8080, "web-0", "n1"),
                         "10.244.0.11": ("notReadyAddresses", 8081, "web-1", "n1")}

        async def slices() -> list[Any]:
            items = (await client.list("endpointslices", namespace=namespace,
                                       label_selector="kubernetes.io/service-name=web"))["items"]
            return items if sum(len(s.get("endpoints") or []) for s in items) == 2 else []

        items = await eventually(slices)
        assert all(s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
                   == "endpointslice-controller.k8s.io" for s in items)
        # The named targetPort "http" resolves per pod (8080 and 8081): one slice per resolved port set, each
        # carrying the Service port's name with the number its pods gave it.
        ports = {e["addresses"][0]: s["ports"] for s in items for e in s["endpoints"]}
        assert ports == {"10.244.0.10": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                         "10.244.0.11": [{"name": "http", "port": 8081, "protocol": "TCP"}]}
        conds = {e["addresses"][0]: e["conditions"] for s in items for e in s["endpoints"]}
        assert conds["10.244.0.10"] == {"ready": True, "serving": True, "terminating": False}
        assert conds["10.244.0.11"]["ready"] is False
        pod1 = await client.get("pods", "web-1", namespace=namespace)
        await mark_pod_ready(client, pod1, ip="10.244.0.11")

        async def both_ready() -> bool:
            subsets = (await client.get("endpoints", "web", namespace=namespace)).get("subsets") or []
            return sum(len(s.get("addresses", [])) for s in subsets) == 2

        await eventually(both_ready)


async def test_leader_election_handover(client: ApiClient, namespace: str) -> None:
    await ensure_namespace(client, LEASE_NAMESPACE)
    timing: dict[str, Any] = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.2}
    first = running_manager(client, ManagerOptions(controllers=["serviceaccount"], identity="first", **timing))
    second = running_manager(client, ManagerOptions(controllers=["serviceaccount"], identity="second", **timing))
    m1 = await first.__aenter__()
    try:
        await asyncio.wait_for(m1.leading.wait(), 5)
        async with second as m2:
            await asyncio.sleep(0.8)
            assert not m2.leading.is_set()  # a standby does nothing while the leader renews
            lease = await client.get("leases", LEASE_NAME, namespace=LEASE_NAMESPACE)
            assert lease["spec"]["holderIdentity"] == "first"
            await first.__aexit__(None, None, None)  # the SIGTERM path: the leader releases its Lease
            await asyncio.wait_for(m2.leading.wait(), 5)
            lease = await client.get("leases", LEASE_NAME, namespace=LEASE_NAMESPACE)
            assert lease["spec"]["holderIdentity"] == "second"
            ns = f"le-{uuid.uuid4().hex[:6]}"
            await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

            async def default_sa() -> bool:
                items = (await client.list("serviceaccounts", namespace=ns))["items"]
                return any(i["metadata"]["name"] == "default" for i in items)

            await eventually(default_sa)
    finally:
        await first.__aexit__(None, None, None)
