"""Network namespaces for several nodes on one machine (runtime-notes.md, "Several nodes on one machine").

For a cluster id `c1` (lowercase letters/digits, at most 8) and node index N (1-based):

    bridge   akb-c1          on the host, 172.30.X.1/24 (the first 172.30.X.0/24 no host address uses)
    netns    aiokube-c1-nodeN (/var/run/netns/aiokube-c1-nodeN)
    veth     akv-c1-N (host side, on the bridge) <-> eth0 (inside the netns), node IP 172.30.X.(10+N)
    inside   lo up, default route via the bridge, ip_forward on (pods route through the node)

Every name carries the cluster id, so parallel clusters never clash, and teardown finds exactly what this
module created by name: `delete_cluster_network(id)` removes the cluster's namespaces, veths and bridge (and
host routes tagged `proto 250` through its subnet). Commands are `ip` and `nsenter --net=…` (never
`ip netns exec`: it remounts /sys and runc then finds no cgroup mount). Needs root.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from dataclasses import dataclass

NETNS_DIR = "/var/run/netns"
SUBNET_POOL = ipaddress.ip_network("172.30.0.0/16")  # /24 per cluster
NODE_IP_OFFSET = 10  # node N gets .10+N (.11, .12, …), the bridge .1
ROUTE_PROTO = "250"  # the proto number the service proxy tags its host-gw routes with
_CLUSTER_ID = re.compile(r"^[a-z0-9]{1,8}$")


class NetnsError(Exception):
    pass


@dataclass(frozen=True)
class NodeNetwork:
    cluster_id: str
    index: int
    netns_name: str
    netns_path: str
    node_ip: str
    prefix_len: int
    gateway_ip: str  # the host bridge's address, the node's default route
    bridge: str
    host_veth: str


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result


def _check_id(cluster_id: str) -> None:
    if not _CLUSTER_ID.match(cluster_id):
        raise NetnsError(f"cluster id {cluster_id!r} must be 1-8 lowercase letters or digits")


def bridge_name(cluster_id: str) -> str:
    return f"akb-{cluster_id}"


def netns_name(cluster_id: str, index: int) -> str:
    return f"aiokube-{cluster_id}-node{index}"


def host_veth_name(cluster_id: str, index: int) -> str:
    name = f"akv-{cluster_id}-{index}"
    if len(name) > 15:  # IFNAMSIZ - 1
        raise NetnsError(f"interface name {name} is too long; use a shorter cluster id")
    return name


def _link_exists(name: str) -> bool:
    return _run("ip", "link", "show", "dev", name, check=False).returncode == 0


def _host_ipv4_networks() -> list[ipaddress.IPv4Network]:
    out = _run("ip", "-j", "-4", "addr", "show").stdout
    networks = []
    for link in json.loads(out or "[]"):
        for info in link.get("addr_info", []):
            networks.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    return networks


def _bridge_subnet(cluster_id: str) -> ipaddress.IPv4Interface | None:
    out = _run("ip", "-j", "-4", "addr", "show", "dev", bridge_name(cluster_id), check=False).stdout
    for link in json.loads(out or "[]"):
        for info in link.get("addr_info", []):
            return ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
    return None


def _ensure_bridge(cluster_id: str) -> ipaddress.IPv4Interface:
    existing = _bridge_subnet(cluster_id)
    if existing is not None:
        return existing
    used = _host_ipv4_networks()
    for subnet in SUBNET_POOL.subnets(new_prefix=24):
        if not any(subnet.overlaps(n) for n in used):
            break
    else:
        raise NetnsError(f"no free /24 left in {SUBNET_POOL}")
    gateway = ipaddress.IPv4Interface(f"{subnet.network_address + 1}/{subnet.prefixlen}")
    bridge = bridge_name(cluster_id)
    if not _link_exists(bridge):
        _run("ip", "link", "add", bridge, "type", "bridge")
    _run("ip", "addr", "replace", str(gateway), "dev", bridge)
    _run("ip", "link", "set", bridge, "up")
    return gateway


def create_node_network(cluster_id: str, index: int) -> NodeNetwork:
    """Create (or complete) node `index`'s namespace, veth and addresses; idempotent."""
    _check_id(cluster_id)
    if not 1 <= index <= 200:
        raise NetnsError("node index must be within 1..200")
    gateway = _ensure_bridge(cluster_id)
    name, veth = netns_name(cluster_id, index), host_veth_name(cluster_id, index)
    path = f"{NETNS_DIR}/{name}"
    node_ip = gateway.network.network_address + NODE_IP_OFFSET + index
    if _run("ip", "netns", "pids", name, check=False).returncode != 0:
        _run("ip", "netns", "add", name)
    if not _link_exists(veth):
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
    _run("ip", "link", "set", veth, "master", bridge_name(cluster_id))
    _run("ip", "link", "set", veth, "up")
    inside = ["nsenter", f"--net={path}"]
    _run(*inside, "ip", "addr", "replace", f"{node_ip}/{gateway.network.prefixlen}", "dev", "eth0")
    _run(*inside, "ip", "link", "set", "lo", "up")
    _run(*inside, "ip", "link", "set", "eth0", "up")
    _run(*inside, "ip", "route", "replace", "default", "via", str(gateway.ip))
    _run(*inside, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    return NodeNetwork(cluster_id=cluster_id, index=index, netns_name=name, netns_path=path, node_ip=str(node_ip),
                       prefix_len=gateway.network.prefixlen, gateway_ip=str(gateway.ip),
                       bridge=bridge_name(cluster_id), host_veth=veth)


def delete_node_network(cluster_id: str, index: int) -> None:
    """Remove node `index`'s namespace (its eth0 goes with it) and host veth; absent pieces are fine."""
    _check_id(cluster_id)
    _run("ip", "netns", "delete", netns_name(cluster_id, index), check=False)
    veth = host_veth_name(cluster_id, index)
    if _link_exists(veth):
        _run("ip", "link", "delete", veth, check=False)


def list_node_indexes(cluster_id: str) -> list[int]:
    _check_id(cluster_id)
    out = _run("ip", "-j", "netns", "list", check=False).stdout
    prefix = f"aiokube-{cluster_id}-node"
    indexes = []
    for entry in json.loads(out or "[]"):
        suffix = str(entry.get("name", ""))[len(prefix):]
        if str(entry.get("name", "")).startswith(prefix) and suffix.isdigit():
            indexes.append(int(suffix))
    return sorted(indexes)


def delete_cluster_network(cluster_id: str) -> None:
    """Remove every namespace, veth and the bridge of `cluster_id`, and host routes (proto 250) via its subnet."""
    _check_id(cluster_id)
    subnet = _bridge_subnet(cluster_id)
    for index in list_node_indexes(cluster_id):
        delete_node_network(cluster_id, index)
    if subnet is not None:
        out = _run("ip", "-j", "-4", "route", "show", "proto", ROUTE_PROTO, check=False).stdout
        for route in json.loads(out or "[]"):
            gateway = route.get("gateway")
            if gateway and ipaddress.ip_address(gateway) in subnet.network:
                _run("ip", "route", "del", route["dst"], "proto", ROUTE_PROTO, check=False)
    if _link_exists(bridge_name(cluster_id)):
        _run("ip", "link", "delete", bridge_name(cluster_id), check=False)
