"""Each filtering and scoring rule end to end: real etcd + API server + an in-process scheduler over many plain
Node objects (no node agent). Pods are created through the API; bindings and FailedScheduling messages are read
back through the API."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from aiokube.api.types import Obj
from aiokube.client import ApiClient
from scheduler.plugins import inter_pod_affinity, node_affinity, node_ports, topology_spread
from tests.integration.test_scheduler_api import eventually, running_scheduler, scheduled_condition
from tests.unit.scheduler_fixtures import make_node, make_pod

pytestmark = pytest.mark.etcd


async def create_nodes(client: ApiClient, nodes: list[Obj]) -> None:
    await asyncio.gather(*(client.create("nodes", node) for node in nodes))


async def create_pods(client: ApiClient, pods: list[Obj]) -> None:
    await asyncio.gather(*(client.create("pods", pod) for pod in pods))


async def placements(client: ApiClient, names: list[str], within: float = 10.0) -> dict[str, str]:
    """Wait until every named pod is bound; their nodes."""
    async def all_bound() -> dict[str, str] | None:
        pods = (await client.list("pods", namespace="default"))["items"]
        nodes = {p["metadata"]["name"]: p["spec"].get("nodeName") or "" for p in pods}
        return {n: nodes[n] for n in names} if all(nodes.get(n) for n in names) else None
    return await eventually(all_bound, within)


async def unschedulable_message(client: ApiClient, name: str) -> str:
    async def message() -> str:
        cond = scheduled_condition(await client.get("pods", name, namespace="default"))
        return str(cond.get("message") or "") if cond.get("reason") == "Unschedulable" else ""
    return await eventually(message)


def with_requests(pod: Obj, **requests: str) -> Obj:
    pod["spec"]["containers"][0]["resources"] = {"requests": requests}
    return pod


async def test_node_name_pods_left_alone_but_counted(client: ApiClient) -> None:
    await create_nodes(client, [make_node(f"n{i}", cpu="2") for i in range(10)])
    async with running_scheduler(client) as scheduler:
        # Already assigned (even to a node that does not exist): not the scheduler's business.
        await create_pods(client, [make_pod("pinned", cpu="2", node="n3"),
                                   make_pod("ghost", node="no-such-node")])
        # ...but its requests count: n3 is full for the next pod that must go there.
        await client.create("pods", make_pod("wants-n3", cpu="1",
                                             nodeSelector={"kubernetes.io/hostname": "n3"}))
        message = await unschedulable_message(client, "wants-n3")
        assert message.startswith("0/10 nodes are available: 1 Insufficient cpu, 9 " + node_affinity.REASON + ".")
        assert (await client.get("pods", "ghost", namespace="default"))["spec"]["nodeName"] == "no-such-node"
        assert "default/pinned" not in scheduler.queue and "default/ghost" not in scheduler.queue
        assert scheduler.scheduled == 0


async def test_required_node_affinity(client: ApiClient) -> None:
    ssd = {"ssd-0", "ssd-1", "ssd-2"}
    await create_nodes(client, [make_node(f"hdd-{i}") for i in range(17)] +
                       [make_node(name, labels={"disk": "ssd"}) for name in sorted(ssd)])

    def needing(disk: str) -> Obj:
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": [disk]}]}]}}}
    async with running_scheduler(client):
        names = [f"db-{i}" for i in range(6)]
        await create_pods(client, [make_pod(n, cpu="100m", affinity=needing("ssd")) for n in names])
        await client.create("pods", make_pod("needs-nvme", affinity=needing("nvme")))
        assert set((await placements(client, names)).values()) <= ssd
        message = await unschedulable_message(client, "needs-nvme")
        assert message.startswith(f"0/20 nodes are available: 20 {node_affinity.REASON}.")


async def test_host_port_conflicts(client: ApiClient) -> None:
    await create_nodes(client, [make_node(f"n{i}") for i in range(3)])
    async with running_scheduler(client):
        names = [f"proxy-{i}" for i in range(3)]
        await create_pods(client, [make_pod(n, host_ports=[8080]) for n in names])
        placed = await placements(client, names)
        assert sorted(placed.values()) == ["n0", "n1", "n2"]  # one hostPort 8080 per node
        await client.create("pods", make_pod("proxy-3", host_ports=[8080]))
        await client.create("pods", make_pod("other-port", host_ports=[9090]))
        message = await unschedulable_message(client, "proxy-3")
        assert message.startswith(f"0/3 nodes are available: 3 {node_ports.REASON}.")
        assert (await placements(client, ["other-port"]))["other-port"] in placed.values()


async def test_inter_pod_affinity_and_anti_affinity(client: ApiClient) -> None:
    await create_nodes(client, [make_node(f"{zone}{i}", labels={"zone": zone})
                                for zone in ("a", "b", "c") for i in range(4)])
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}]}}
    async with running_scheduler(client):
        webs = [f"web-{i}" for i in range(3)]
        await create_pods(client, [make_pod(n, labels={"app": "web"}, affinity=anti) for n in webs])
        placed = await placements(client, webs)
        assert sorted(node[0] for node in placed.values()) == ["a", "b", "c"]  # one per zone
        await client.create("pods", make_pod("web-3", labels={"app": "web"}, affinity=anti))
        message = await unschedulable_message(client, "web-3")
        assert message.startswith(f"0/12 nodes are available: 12 {inter_pod_affinity.ANTI_AFFINITY_REASON}.")

        # Required affinity: follow web-0 into its zone, whichever that is.
        near = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}]}}
        follow = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"role": "first"}}, "topologyKey": "zone"}]}}
        await client.patch("pods", "web-0", {"metadata": {"labels": {"role": "first"}}}, namespace="default")
        await create_pods(client, [make_pod(f"cache-{i}", affinity=follow) for i in range(4)] +
                          [make_pod("near-any-web", affinity=near)])
        followers = await placements(client, [f"cache-{i}" for i in range(4)])
        assert {node[0] for node in followers.values()} == {placed["web-0"][0]}
        await placements(client, ["near-any-web"])
        await client.create("pods", make_pod("lonely", affinity={"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "absent"}}, "topologyKey": "zone"}]}}))
        message = await unschedulable_message(client, "lonely")
        assert message.startswith(f"0/12 nodes are available: 12 {inter_pod_affinity.AFFINITY_REASON}.")


async def test_topology_spread_max_skew_do_not_schedule(client: ApiClient) -> None:
    # Zone c has room for one pod only, so a strict skew of 1 caps the others at 2 each.
    await create_nodes(client, [make_node(f"a{i}", labels={"zone": "a"}) for i in range(3)] +
                       [make_node(f"b{i}", labels={"zone": "b"}) for i in range(3)] +
                       [make_node("c0", cpu="1", labels={"zone": "c"})])
    spread = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "spread"}}}]
    async with running_scheduler(client):
        names = [f"s-{i}" for i in range(5)]
        for name in names:  # one by one so each sees the previous placements
            await client.create("pods", make_pod(name, cpu="1", labels={"app": "spread"},
                                                 topologySpreadConstraints=spread))
            await placements(client, [name])
        zones = Counter(node[0] for node in (await placements(client, names)).values())
        assert zones == {"a": 2, "b": 2, "c": 1}
        await client.create("pods", make_pod("s-5", cpu="1", labels={"app": "spread"},
                                             topologySpreadConstraints=spread))
        message = await unschedulable_message(client, "s-5")
        assert message.startswith("0/7 nodes are available: 1 Insufficient cpu, "
                                  f"6 {topology_spread.REASON}.")


async def test_scores_spread_pods_and_preferred_affinity_wins(client: ApiClient) -> None:
    await create_nodes(client, [make_node(f"n{i:02d}", labels={"zone": f"z{i % 5}"}) for i in range(25)])
    async with running_scheduler(client):
        # LeastAllocated: with every node equally fit, identical pods land on 25 different nodes.
        names = [f"spread-{i:02d}" for i in range(25)]
        for chunk in range(0, 25, 5):
            await create_pods(client, [make_pod(n, cpu="1", memory="1Gi") for n in names[chunk:chunk + 5]])
        placed = await placements(client, names)
        assert len(set(placed.values())) == 25
        # A preferred affinity to db's zone outweighs the (now uniform) resource scores.
        await client.create("pods", make_pod("db", labels={"app": "db"}, node="n07"))
        prefer = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
                  "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}}]}}
        await create_pods(client, [make_pod(f"app-{i}", cpu="1", memory="1Gi", affinity=prefer) for i in range(3)])
        apps = await placements(client, [f"app-{i}" for i in range(3)])
        assert all(int(node[1:]) % 5 == 7 % 5 for node in apps.values()), apps


async def test_insufficient_ephemeral_storage_message(client: ApiClient) -> None:
    await create_nodes(client, [make_node(f"n{i}") for i in range(8)])  # 100Gi ephemeral-storage each
    async with running_scheduler(client):
        await client.create("pods", with_requests(make_pod("scratch-ok"), **{"ephemeral-storage": "60Gi"}))
        await client.create("pods", with_requests(make_pod("scratch-huge"), **{"ephemeral-storage": "200Gi"}))
        await placements(client, ["scratch-ok"])
        message = await unschedulable_message(client, "scratch-huge")
        assert message.startswith("0/8 nodes are available: 8 Insufficient ephemeral-storage.")
