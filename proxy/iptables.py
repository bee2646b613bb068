"""iptables rules for Services (the fallback when nftables is unusable), as pure functions:
`build_iptables(ports, node)` -> `IptablesRules`, `render_restore(rules, existing_chains)` -> the text of one
atomic `iptables-restore --noflush` transaction, `render_cleanup(existing_chains)`.

Layout, kube-proxy's iptables mode with our own chain prefix (every chain the proxy owns starts with AIOKUBE-,
so nothing of the host's is touched and `--cleanup` finds them all):

    nat  PREROUTING/OUTPUT -> AIOKUBE-SERVICES: `-d ClusterIP -p proto --dport port -j AIOKUBE-SVC-…`, then
                              local destinations (not 127/8) -> AIOKUBE-NODEPORTS: `--dport nodePort -j AIOKUBE-EXT-…`
         AIOKUBE-SVC-…     ClientIP affinity (`-m recent --rcheck`) first, then `-m statistic --mode random
                           --probability 1/(n-i)` over the endpoints, the last one unconditional
         AIOKUBE-EXT-…     NodePort entry: mark for masquerade (externalTrafficPolicy Cluster) then balance, or
                           balance over this node's endpoints only (Local, source IP kept; the node's own
                           traffic, `--src-type LOCAL`, short-circuits to the SVC chain)
         AIOKUBE-SEP-…     one per endpoint: hairpin mark, `-m recent --set` (affinity), DNAT
         POSTROUTING -> AIOKUBE-POSTROUTING: masquerade packets marked 0x4000
    filter INPUT/FORWARD/OUTPUT -> AIOKUBE-SERVICES: REJECT (or DROP for a traffic policy Local without a local
                           endpoint) Services without endpoints

The jumps from the built-in chains are not part of the restore text (they would be duplicated by every
--noflush restore); `IptablesApplier` ensures them once with `-C`/`-I`.

Incremental writes: `render_diff(new, old)` names only the chains whose rules differ from the last write (a
chain not named in a `--noflush` restore is left exactly as it is, counters included), so one changed Service
rewrites its own SVC/EXT/SEP chains, plus AIOKUBE-SERVICES/NODEPORTS only when its entry there changed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from proxy.model import Endpoint, ServicePort

PREFIX = "AIOKUBE-"
SERVICES = "AIOKUBE-SERVICES"
NODEPORTS = "AIOKUBE-NODEPORTS"
MARK_MASQ = "AIOKUBE-MARK-MASQ"
POSTROUTING = "AIOKUBE-POSTROUTING"
MASQ_MARK = "0x4000"
COMMENT = "aiokube service portals"
# (table, built-in chain, our chain): the jumps the applier ensures outside the restore transaction.
JUMPS = (
    ("nat", "PREROUTING", SERVICES),
    ("nat", "OUTPUT", SERVICES),
    ("nat", "POSTROUTING", POSTROUTING),
    ("filter", "INPUT", SERVICES),
    ("filter", "FORWARD", SERVICES),
    ("filter", "OUTPUT", SERVICES),
)


def jump_rule(table: str, builtin: str, target: str) -> list[str]:
    """Arguments after `-t TABLE -A|-C|-D` for one jump from a built-in chain (filter: new connections only)."""
    extra = ["-m", "conntrack", "--ctstate", "NEW"] if table == "filter" else []
    return [builtin, *extra, "-m", "comment", "--comment", COMMENT, "-j", target]


@dataclass
class IptablesRules:
    """The desired content of our chains, per table: chain name -> rule lines (without `-A CHAIN`)."""

    nat: dict[str, list[str]] = field(default_factory=dict)
    filter: dict[str, list[str]] = field(default_factory=dict)


@functools.lru_cache(maxsize=1 << 16)  # chain names are asked for many times per sync
def _hash(*parts: object) -> str:
    # 16 base32 characters keep "AIOKUBE-SVC-" + hash at 28, iptables' limit for a chain name.
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def service_chain(port: ServicePort) -> str:
    return f"{PREFIX}SVC-{_hash(port.id)}"


def external_chain(port: ServicePort) -> str:
    return f"{PREFIX}EXT-{_hash(port.id)}"


def endpoint_chain(port: ServicePort, endpoint: Endpoint) -> str:
    return f"{PREFIX}SEP-{_hash(port.id, endpoint.ip, endpoint.port)}"


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"'


def _match(port: ServicePort) -> str:
    return f"-p {port.protocol} -m {port.protocol} --dport"


def _balance(port: ServicePort, endpoints: list[Endpoint]) -> list[str]:
    """Pick one endpoint: the remembered one for a ClientIP-affine client, else each with equal chance
    (the i-th of n taken with probability 1/(n-i), the last one always)."""
    rules: list[str] = []
    if port.affinity_timeout is not None:
        rules += [f"-m recent --name {endpoint_chain(port, e)} --mask 255.255.255.255 --rsource --rcheck "
                  f"--seconds {port.affinity_timeout} --reap -j {endpoint_chain(port, e)}" for e in endpoints]
    count = len(endpoints)
    for index, endpoint in enumerate(endpoints):
        chance = "" if index == count - 1 else \
            f"-m statistic --mode random --probability {1 / (count - index):.10f} "
        rules.append(f"{_comment(f'{port.id} -> {endpoint.ip}:{endpoint.port}')} {chance}"
                     f"-j {endpoint_chain(port, endpoint)}")
    return rules


def _endpoint_rules(port: ServicePort, endpoint: Endpoint) -> list[str]:
    rules = [f"-s {endpoint.ip}/32 -j {MARK_MASQ}"]  # hairpin: a pod reaching itself through its Service
    recent = (f"-m recent --name {endpoint_chain(port, endpoint)} --mask 255.255.255.255 --rsource --set "
              if port.affinity_timeout is not None else "")
    rules.append(f"-p {port.protocol} {recent}-m {port.protocol} "
                 f"-j DNAT --to-destination {endpoint.ip}:{endpoint.port}")
    return rules


@dataclass(frozen=True)
class _PortRules:
    """What one Service port contributes: its own chains, and its lines in the shared chains."""

    chains: tuple[tuple[str, tuple[str, ...]], ...]  # nat chains owned by this port
    services: tuple[str, ...]  # lines of nat AIOKUBE-SERVICES
    node_ports: tuple[str, ...]  # lines of nat AIOKUBE-NODEPORTS
    rejects: tuple[str, ...]  # lines of filter AIOKUBE-SERVICES


@functools.lru_cache(maxsize=1 << 14)  # an unchanged Service port (same endpoints) is not rebuilt on each sync
def _port_rules(port: ServicePort, node_name: str) -> _PortRules:
    chains: dict[str, list[str]] = {}
    services: list[str] = []
    node_ports: list[str] = []
    rejects: list[str] = []
    cluster_endpoints = port.usable_endpoints(node_name, local_only=port.internal_local)
    cluster_match = f"-d {port.cluster_ip}/32 {_match(port)} {port.port}"
    wanted = set(cluster_endpoints)
    if cluster_endpoints:
        services.append(f"{_comment(f'{port.id} cluster IP')} {cluster_match} -j {service_chain(port)}")
        chains[service_chain(port)] = _balance(port, cluster_endpoints)
    else:
        # internalTrafficPolicy Local without a local endpoint drops; no endpoint at all is refused.
        verdict = "DROP" if port.internal_local and port.endpoints else "REJECT"
        rejects.append(f"{_comment(f'{port.id} has no endpoints')} {cluster_match} -j {verdict}")
    if port.node_port is not None:
        node_match = f"{_match(port)} {port.node_port}"
        external_endpoints = port.usable_endpoints(node_name, local_only=port.external_local)
        # externalTrafficPolicy Local: the node's own traffic is not external; like kube-proxy, it goes to any
        # endpoint through the ClusterIP chain, masqueraded so the reply comes back through this node.
        short_circuit = [f"-m addrtype --src-type LOCAL -j {MARK_MASQ}",
                         f"-m addrtype --src-type LOCAL -j {service_chain(port)}"] \
            if port.external_local and cluster_endpoints else []
        if external_endpoints or short_circuit:
            rules = short_circuit if port.external_local else [f"-j {MARK_MASQ}"]
            node_ports.append(f"{_comment(f'{port.id} node port')} {node_match} -j {external_chain(port)}")
            chains[external_chain(port)] = rules + (_balance(port, external_endpoints) if external_endpoints else [])
            wanted |= set(external_endpoints)
        if not external_endpoints:
            # externalTrafficPolicy Local on a node without a local endpoint drops: never a hop to a remote pod.
            # (Filter runs after nat: the node's own traffic was DNATed by then and no longer matches.)
            verdict = "DROP" if port.external_local and port.endpoints else "REJECT"
            rejects.append(f"{_comment(f'{port.id} has no endpoints')} -m addrtype --dst-type LOCAL "
                           f"{node_match} -j {verdict}")
    for endpoint in sorted(wanted, key=lambda e: (e.ip, e.port)):
        chains[endpoint_chain(port, endpoint)] = _endpoint_rules(port, endpoint)
    return _PortRules(tuple((name, tuple(rules)) for name, rules in chains.items()),
                      tuple(services), tuple(node_ports), tuple(rejects))


def build_iptables(ports: Iterable[ServicePort], node_name: str) -> IptablesRules:
    """All of our chains for this node. Ports are taken in id order, so the shared chains' rule order (and
    therefore whether they changed) does not depend on the order the caches list Services in."""
    nat: dict[str, list[str]] = {SERVICES: [], NODEPORTS: [],
                                 MARK_MASQ: [f"-j MARK --or-mark {MASQ_MARK}"],
                                 POSTROUTING: [f"-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
                                               f"-j MARK --xor-mark {MASQ_MARK}",
                                               "-j MASQUERADE --random-fully"]}
    filter_services: list[str] = []
    for port in sorted(ports, key=lambda p: p.id):
        rules = _port_rules(port, node_name)
        nat[SERVICES] += rules.services
        nat[NODEPORTS] += rules.node_ports
        filter_services += rules.rejects
        for name, chain_rules in rules.chains:
            nat[name] = list(chain_rules)
    # Node ports last: only for local destinations, and never loopback (no route_localnet needed).
    nat[SERVICES].append(f"{_comment('node ports')} -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j {NODEPORTS}")
    return IptablesRules(nat=nat, filter={SERVICES: filter_services})


def _render_table(name: str, chains: dict[str, list[str]], existing: Iterable[str]) -> list[str]:
    stale = sorted(c for c in set(existing) - set(chains) if c.startswith(PREFIX))
    # Declaring a chain under --noflush creates it or flushes it; stale ones are flushed, then deleted once
    # nothing of ours refers to them any more (all referring chains are rewritten in the same transaction).
    lines = [f"*{name}"]
    lines += [f":{chain} - [0:0]" for chain in [*chains, *stale]]
    for chain, rules in chains.items():
        lines += [f"-A {chain} {rule}" for rule in rules]
    lines += [f"-X {chain}" for chain in stale]
    lines.append("COMMIT")
    return lines


def render_restore(rules: IptablesRules, existing_nat: Iterable[str] = (),
                   existing_filter: Iterable[str] = ()) -> str:
    """One `iptables-restore --noflush` transaction: our chains become `rules`, stale chains of ours go."""
    lines = _render_table("filter", rules.filter, existing_filter) + _render_table("nat", rules.nat, existing_nat)
    return "\n".join(lines) + "\n"


def render_cleanup(existing_nat: Iterable[str], existing_filter: Iterable[str]) -> str:
    """Remove every chain of ours (the jumps to them must be gone first)."""
    return render_restore(IptablesRules(), existing_nat, existing_filter)


def _diff_table(name: str, new: dict[str, list[str]], old: dict[str, list[str]]) -> list[str]:
    changed = [chain for chain, rules in new.items() if old.get(chain) != rules]
    removed = sorted(set(old) - set(new))
    if not changed and not removed:
        return []
    lines = [f"*{name}"]
    # Declaring creates a new chain or flushes a changed one; removed ones are flushed, then deleted after
    # the chains that jumped to them (all changed, so all rewritten here) no longer do.
    lines += [f":{chain} - [0:0]" for chain in [*changed, *removed]]
    for chain in changed:
        lines += [f"-A {chain} {rule}" for rule in new[chain]]
    lines += [f"-X {chain}" for chain in removed]
    lines.append("COMMIT")
    return lines


def render_diff(new: IptablesRules, old: IptablesRules) -> str:
    """One `iptables-restore --noflush` transaction from `old` (what our chains hold, as last written) to `new`,
    naming only the chains that differ; "" when nothing does."""
    lines = _diff_table("filter", new.filter, old.filter) + _diff_table("nat", new.nat, old.nat)
    return "\n".join(lines) + "\n" if lines else ""


def chains_in_save(save_output: str) -> set[str]:
    """Our chain names in `iptables-save -t TABLE` output."""
    return {line[1:].split()[0] for line in save_output.splitlines()
            if line.startswith(f":{PREFIX}")}
