"""nftables rules for Services, as pure functions: `build_ruleset(ports, node)` -> `Ruleset`, and
`render_sync(ruleset, existing_chains, existing_sets)` -> the text of one atomic `nft -f` transaction.

Everything lives in one table, `ip aiokube`:

    nat-prerouting / nat-output (dstnat)  -> services: `ip daddr . l4proto . dport vmap @service-ips`, and for
                                             local destinations `l4proto . dport vmap @service-nodeports`
    svc-…     one per Service port: ClientIP affinity checks, then `numgen random mod N vmap` over endpoints
    ext-…     NodePort entry: marks for masquerade (externalTrafficPolicy Cluster) or balances over this node's
              endpoints only (Local, source IP kept; the node's own traffic short-circuits to the svc- chain)
    ep-…      one per endpoint: hairpin mark when the endpoint talks to itself, affinity `update`, DNAT
    nat-postrouting -> masquerading: masquerade packets marked 0x4000
    filter-input/forward/output -> service-endpoints-check: REJECT traffic to Services without endpoints; on
              input/forward also nodeport-endpoints-check (REJECT, or DROP for externalTrafficPolicy Local)
    aff-…     dynamic sets with timeout, one per endpoint of a ClientIP-affinity Service

A sync re-declares everything (`add` is idempotent), flushes the maps and chains it writes, and deletes the
chains/sets no longer wanted, all in one transaction: the kernel swaps the whole state at once, and affinity
sets that still exist keep their entries.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from proxy.model import Endpoint, ServicePort

TABLE = "ip aiokube"
MASQ_MARK = "0x4000"
SERVICE_KEY_TYPE = "ipv4_addr . inet_proto . inet_service : verdict"
NODEPORT_KEY_TYPE = "inet_proto . inet_service : verdict"
MAPS = {
    "service-ips": SERVICE_KEY_TYPE,
    "service-nodeports": NODEPORT_KEY_TYPE,
    "no-endpoint-services": SERVICE_KEY_TYPE,
    "no-endpoint-nodeports": NODEPORT_KEY_TYPE,
}
# Base chains hooked into netfilter. filter-* run at priority -110, before any filter table of the host, so
# traffic to a Service without endpoints is refused at once (kube-proxy's behaviour) instead of timing out.
BASE_CHAINS = {
    "nat-prerouting": "type nat hook prerouting priority dstnat; policy accept;",
    "nat-output": "type nat hook output priority -100; policy accept;",
    "nat-postrouting": "type nat hook postrouting priority srcnat; policy accept;",
    "filter-input": "type filter hook input priority -110; policy accept;",
    "filter-forward": "type filter hook forward priority -110; policy accept;",
    "filter-output": "type filter hook output priority -110; policy accept;",
}
# Loopback destinations are never NodePorts (like kube-proxy's nftables mode): route_localnet is not needed.
LOCAL_DESTINATION = "fib daddr type local ip daddr != 127.0.0.0/8"
STATIC_RULES: dict[str, list[str]] = {
    "nat-prerouting": ["jump services"],
    "nat-output": ["jump services"],
    "nat-postrouting": ["jump masquerading"],
    # Node ports are checked on the way in only, never in output: a node's own traffic to its NodePort is
    # DNATed by nat-output (which runs after this priority) even when external traffic would be dropped.
    "filter-input": ["ct state new jump service-endpoints-check", "ct state new jump nodeport-endpoints-check"],
    "filter-forward": ["ct state new jump service-endpoints-check", "ct state new jump nodeport-endpoints-check"],
    "filter-output": ["ct state new jump service-endpoints-check"],
    "services": ["ip daddr . meta l4proto . th dport vmap @service-ips",
                 f"{LOCAL_DESTINATION} meta l4proto . th dport vmap @service-nodeports"],
    "service-endpoints-check": ["ip daddr . meta l4proto . th dport vmap @no-endpoint-services"],
    "nodeport-endpoints-check": [f"{LOCAL_DESTINATION} meta l4proto . th dport vmap @no-endpoint-nodeports"],
    "mark-for-masquerade": [f"meta mark set meta mark | {MASQ_MARK}"],
    "masquerading": [f"meta mark & {MASQ_MARK} == 0 return",
                     f"meta mark set meta mark ^ {MASQ_MARK}",
                     "masquerade fully-random"],
    "reject-chain": ["reject"],
}


@dataclass
class Ruleset:
    """The desired content of the table: chains with their rules, affinity sets, map elements."""

    chains: dict[str, list[str]] = field(default_factory=dict)
    affinity_sets: dict[str, int] = field(default_factory=dict)  # name -> timeout seconds
    map_elements: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in MAPS})


@functools.lru_cache(maxsize=1 << 16)  # chain names are asked for many times per sync
def _hash(*parts: object) -> str:
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode()).digest()
    return base64.b32encode(digest).decode()[:8]


def service_chain(port: ServicePort) -> str:
    return f"svc-{_hash(port.id)}-{port.id}"


def external_chain(port: ServicePort) -> str:
    return f"ext-{_hash(port.id)}-{port.id}"


def endpoint_chain(port: ServicePort, endpoint: Endpoint) -> str:
    return f"ep-{_hash(port.id, endpoint.ip, endpoint.port)}-{port.id}__{endpoint.ip}/{endpoint.port}"


def affinity_set(port: ServicePort, endpoint: Endpoint) -> str:
    # The timeout is part of the identity: a set's timeout cannot be changed in place.
    return f"aff-{_hash(port.id, endpoint.ip, endpoint.port, port.affinity_timeout)}"


def _balance(port: ServicePort, endpoints: list[Endpoint]) -> list[str]:
    """Rules that pick one endpoint: the remembered one for a ClientIP-affine client, else a random one."""
    rules: list[str] = []
    if port.affinity_timeout is not None:
        rules += [f"ip saddr @{affinity_set(port, e)} goto {endpoint_chain(port, e)}" for e in endpoints]
    choices = ", ".join(f"{i} : goto {endpoint_chain(port, e)}" for i, e in enumerate(endpoints))
    rules.append(f"numgen random mod {len(endpoints)} vmap {{ {choices} }}")
    return rules


def _endpoint_rules(port: ServicePort, endpoint: Endpoint) -> list[str]:
    rules = [f"ip saddr {endpoint.ip} jump mark-for-masquerade"]  # hairpin: a pod reaching itself via its Service
    if port.affinity_timeout is not None:
        rules.append(f"update @{affinity_set(port, endpoint)} {{ ip saddr }}")
    rules.append(f"meta l4proto {port.protocol} dnat to {endpoint.ip}:{endpoint.port}")
    return rules


@dataclass(frozen=True)
class _PortRules:
    chains: tuple[tuple[str, tuple[str, ...]], ...]
    affinity_sets: tuple[tuple[str, int], ...]
    map_elements: tuple[tuple[str, str], ...]  # (map name, element)


@functools.lru_cache(maxsize=1 << 14)  # an unchanged Service port (same endpoints) is not rebuilt on each sync
def _port_rules(port: ServicePort, node_name: str) -> _PortRules:
    chains: dict[str, list[str]] = {}
    affinity_sets: dict[str, int] = {}
    elements: list[tuple[str, str]] = []
    cluster_endpoints = port.usable_endpoints(node_name, local_only=port.internal_local)
    service_key = f"{port.cluster_ip} . {port.protocol} . {port.port}"
    wanted = set(cluster_endpoints)
    if cluster_endpoints:
        chains[service_chain(port)] = _balance(port, cluster_endpoints)
        elements.append(("service-ips", f"{service_key} : goto {service_chain(port)}"))
    else:
        # internalTrafficPolicy Local without a local endpoint drops; no endpoint at all is refused.
        verdict = "drop" if port.internal_local and port.endpoints else "goto reject-chain"
        elements.append(("no-endpoint-services", f"{service_key} : {verdict}"))
    if port.node_port is not None:
        node_port_key = f"{port.protocol} . {port.node_port}"
        external_endpoints = port.usable_endpoints(node_name, local_only=port.external_local)
        # externalTrafficPolicy Local: the node's own traffic is not external; like kube-proxy, it goes to any
        # endpoint through the ClusterIP chain, masqueraded so the reply comes back through this node.
        short_circuit = ["fib saddr type local jump mark-for-masquerade",
                         f"fib saddr type local goto {service_chain(port)}"] \
            if port.external_local and cluster_endpoints else []
        if external_endpoints or short_circuit:
            rules = short_circuit if port.external_local else ["jump mark-for-masquerade"]
            chains[external_chain(port)] = rules + (_balance(port, external_endpoints) if external_endpoints else [])
            elements.append(("service-nodeports", f"{node_port_key} : goto {external_chain(port)}"))
            wanted |= set(external_endpoints)
        if not external_endpoints:
            # Local without a local endpoint drops external traffic (checked on input, after nat-prerouting
            # left it un-DNATed); no endpoint at all is refused.
            verdict = "drop" if port.external_local and port.endpoints else "goto reject-chain"
            elements.append(("no-endpoint-nodeports", f"{node_port_key} : {verdict}"))
    for endpoint in sorted(wanted, key=lambda e: (e.ip, e.port)):
        chains[endpoint_chain(port, endpoint)] = _endpoint_rules(port, endpoint)
        if port.affinity_timeout is not None:
            affinity_sets[affinity_set(port, endpoint)] = port.affinity_timeout
    return _PortRules(tuple((name, tuple(rules)) for name, rules in chains.items()),
                      tuple(affinity_sets.items()), tuple(elements))


def build_ruleset(ports: Iterable[ServicePort], node_name: str) -> Ruleset:
    """The whole table for this node."""
    ruleset = Ruleset(chains={name: list(rules) for name, rules in STATIC_RULES.items()})
    for port in ports:
        rules = _port_rules(port, node_name)
        for name, chain_rules in rules.chains:
            ruleset.chains[name] = list(chain_rules)
        ruleset.affinity_sets.update(rules.affinity_sets)
        for map_name, element in rules.map_elements:
            ruleset.map_elements[map_name].append(element)
    return ruleset


def render_sync(ruleset: Ruleset, existing_chains: Iterable[str] = (), existing_sets: Iterable[str] = ()) -> str:
    """One `nft -f` transaction turning the table (holding `existing_*`) into `ruleset`."""
    lines = [f"add table {TABLE}"]
    for name, declaration in BASE_CHAINS.items():
        lines.append(f"add chain {TABLE} {name} {{ {declaration} }}")
    for name in ruleset.chains:
        if name not in BASE_CHAINS:
            lines.append(f"add chain {TABLE} {name}")
    for name, key_type in MAPS.items():
        lines.append(f"add map {TABLE} {name} {{ type {key_type}; }}")
    for name, timeout in ruleset.affinity_sets.items():
        lines.append(f"add set {TABLE} {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}")
    for name in MAPS:
        lines.append(f"flush map {TABLE} {name}")
    for name, rules in ruleset.chains.items():
        lines.append(f"flush chain {TABLE} {name}")
        lines += [f"add rule {TABLE} {name} {rule}" for rule in rules]
    for name, elements in ruleset.map_elements.items():
        if elements:
            lines.append(f"add element {TABLE} {name} {{ {', '.join(elements)} }}")
    stale_chains = sorted(set(existing_chains) - set(ruleset.chains) - set(BASE_CHAINS))
    lines += [f"flush chain {TABLE} {name}" for name in stale_chains]
    lines += [f"delete chain {TABLE} {name}" for name in stale_chains]
    stale_sets = sorted(set(existing_sets) - set(ruleset.affinity_sets) - set(MAPS))
    lines += [f"delete set {TABLE} {name}" for name in stale_sets]
    return "\n".join(lines) + "\n"


def render_cleanup() -> str:
    """Remove the whole table (declared first so the delete never fails on a table that is absent)."""
    return f"add table {TABLE}\ndelete table {TABLE}\n"


def _elements_by_key(elements: list[str]) -> dict[str, str]:
    return {key: verdict for key, _, verdict in (element.partition(" : ") for element in elements)}


def render_diff(new: Ruleset, old: Ruleset) -> str:
    """One `nft -f` transaction from `old` (what the table holds, as last written) to `new`, touching only the
    chains, sets and map elements that differ: with 1,000 Services a full rewrite takes over a second in the
    kernel, one changed Service a few milliseconds."""
    lines = [f"add table {TABLE}"]
    added_chains = [name for name in new.chains if name not in old.chains]
    changed_chains = [name for name, rules in new.chains.items() if old.chains.get(name) != rules]
    removed_chains = sorted(set(old.chains) - set(new.chains))
    lines += [f"add chain {TABLE} {name}" for name in added_chains]
    for name, timeout in new.affinity_sets.items():
        if old.affinity_sets.get(name) != timeout:
            lines.append(f"add set {TABLE} {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}")
    for name in changed_chains:
        lines.append(f"flush chain {TABLE} {name}")
        lines += [f"add rule {TABLE} {name} {rule}" for rule in new.chains[name]]
    for map_name in MAPS:
        old_elements = _elements_by_key(old.map_elements.get(map_name, []))
        new_elements = _elements_by_key(new.map_elements.get(map_name, []))
        gone = [key for key, verdict in old_elements.items() if new_elements.get(key) != verdict]
        come = [f"{key} : {verdict}" for key, verdict in new_elements.items() if old_elements.get(key) != verdict]
        if gone:
            lines.append(f"delete element {TABLE} {map_name} {{ {', '.join(gone)} }}")
        if come:
            lines.append(f"add element {TABLE} {map_name} {{ {', '.join(come)} }}")
    lines += [f"flush chain {TABLE} {name}" for name in removed_chains]
    lines += [f"delete chain {TABLE} {name}" for name in removed_chains]
    lines += [f"delete set {TABLE} {name}" for name in sorted(set(old.affinity_sets) - set(new.affinity_sets))]
    return "\n".join(lines) + "\n"
