"""The iptables fallback: rule text as a pure function (balancing probabilities, affinity, hairpin, traffic
policies, stale chain removal), and the whole applier in a real kernel inside a throwaway network namespace
(`unshare -n`), with real TCP connections DNATed to listeners, for both iptables-nft and iptables-legacy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any

import pytest

from proxy.__main__ import choose_backend
from proxy.commands import CommandError, CommandRunner
from proxy.iptables import (
    NODEPORTS,
    SERVICES,
    build_iptables,
    chains_in_save,
    endpoint_chain,
    external_chain,
    render_cleanup,
    render_diff,
    render_restore,
    service_chain,
)
from proxy.iptables_applier import IptablesApplier
from proxy.model import service_ports
from proxy.nft_applier import NftApplier, NftUnavailableError
from tests.unit.test_proxy_rules import ep, slice_, svc

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AFFINITY: dict[str, Any] = {"sessionAffinity": "ClientIP",
                            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}}


def test_balancing_uses_falling_probabilities_and_last_endpoint_unconditional() -> None:
    [port] = service_ports([svc()], [slice_("web", ep("10.244.1.5"), ep("10.244.2.5"), ep("10.244.3.5"),
                                            ep("10.244.4.5", ready=False))])
    rules = build_iptables([port], "n1")
    chain = rules.nat[service_chain(port)]
    assert len(chain) == 3  # the unready endpoint is not balanced to
    assert "--probability 0.3333333333" in chain[0] and "--probability 0.5000000000" in chain[1]
    assert "statistic" not in chain[2] and chain[2].endswith(f"-j {endpoint_chain(port, port.endpoints[2])}")
    assert any("-d 10.96.0.20/32 -p tcp -m tcp --dport 80" in r for r in rules.nat[SERVICES])
    sep = rules.nat[endpoint_chain(port, port.endpoints[0])]
    assert sep[0] == "-s 10.244.1.5/32 -j AIOKUBE-MARK-MASQ"  # hairpin
    assert sep[1].endswith("-j DNAT --to-destination 10.244.1.5:8080") and "recent" not in sep[1]
    assert all(len(name) <= 28 for name in rules.nat)  # iptables' chain name limit


def test_affinity_checks_recent_lists_before_random_choice() -> None:
    [port] = service_ports([svc(**AFFINITY)], [slice_("web", ep("10.244.1.5"), ep("10.244.2.5"))])
    chain = build_iptables([port], "n1").nat[service_chain(port)]
    assert all("--rcheck --seconds 30 --reap" in rule for rule in chain[:2])
    assert "statistic" in chain[2]
    sep = build_iptables([port], "n1").nat[endpoint_chain(port, port.endpoints[0])]
    assert f"--name {endpoint_chain(port, port.endpoints[0])}" in sep[1] and "--set" in sep[1]


def test_node_port_policies_and_services_without_endpoints() -> None:
    services = [svc("cluster", kind="NodePort", ip="10.96.0.30",
                    ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]),
                svc("local", kind="NodePort", ip="10.96.0.31", externalTrafficPolicy="Local",
                    ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30081}]),
                svc("remote-only", kind="NodePort", ip="10.96.0.32", externalTrafficPolicy="Local",
                    ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30082}]),
                svc("empty", ip="10.96.0.33")]
    slices = [slice_("cluster", ep("10.244.1.5", "n1"), ep("10.244.2.5", "n2")),
              slice_("local", ep("10.244.1.6", "n1"), ep("10.244.2.6", "n2")),
              slice_("remote-only", ep("10.244.2.7", "n2"))]
    by_name = {port.name: port for port in service_ports(services, slices)}
    cluster, local, remote_only = by_name["cluster"], by_name["local"], by_name["remote-only"]
    rules = build_iptables(service_ports(services, slices), "n1")
    cluster_ext = rules.nat[external_chain(cluster)]
    assert cluster_ext[0] == "-j AIOKUBE-MARK-MASQ" and len(cluster_ext) == 3  # masquerade, then both endpoints
    # Local: the node's own traffic (source address local) short-circuits to every endpoint, masqueraded;
    # external sources keep their address and reach the local endpoint only.
    local_ext = rules.nat[external_chain(local)]
    assert local_ext[:2] == ["-m addrtype --src-type LOCAL -j AIOKUBE-MARK-MASQ",
                             f"-m addrtype --src-type LOCAL -j {service_chain(local)}"]
    assert len(local_ext) == 3 and "10.244.1.6" in local_ext[2] and "MARK-MASQ" not in local_ext[2]
    # No local endpoint: only the short circuit; external traffic falls through to the filter DROP.
    assert rules.nat[external_chain(remote_only)] == [
        "-m addrtype --src-type LOCAL -j AIOKUBE-MARK-MASQ",
        f"-m addrtype --src-type LOCAL -j {service_chain(remote_only)}"]
    rejects = rules.filter[SERVICES]
    assert any("--dport 30082 -j DROP" in r and "--dst-type LOCAL" in r for r in rejects)
    assert any("-d 10.96.0.33/32" in r and r.endswith("-j REJECT") for r in rejects)
    assert rules.nat[SERVICES][-1].endswith(f"! -d 127.0.0.0/8 -j {NODEPORTS}")


def test_restore_text_deletes_stale_chains_and_cleanup_removes_all() -> None:
    rules = build_iptables(service_ports([svc()], [slice_("web", ep("10.244.1.5"))]), "n1")
    text = render_restore(rules, existing_nat=["AIOKUBE-SVC-GONE", "KUBE-SERVICES"])
    assert text.startswith("*filter\n") and text.count("COMMIT") == 2
    assert ":AIOKUBE-SVC-GONE - [0:0]" in text and "-X AIOKUBE-SVC-GONE" in text
    assert "KUBE-SERVICES" not in text.replace("AIOKUBE-SERVICES", "")  # never touches chains not ours
    cleanup = render_cleanup(["AIOKUBE-SERVICES", "AIOKUBE-SVC-OLD"], ["AIOKUBE-SERVICES"])
    assert "\n-A " not in cleanup and cleanup.count("\n-X ") == 3
    assert chains_in_save(":PREROUTING ACCEPT [0:0]\n:AIOKUBE-SEP-A - [0:0]\n-A X\n") == {"AIOKUBE-SEP-A"}


def test_diff_rewrites_only_the_chains_of_changed_services() -> None:
    services = [svc(), svc("stays", ip="10.96.0.23"), svc("gone", ip="10.96.0.22")]
    slices = [slice_("web", ep("10.244.1.5"), ep("10.244.2.5")), slice_("stays", ep("10.244.1.10")),
              slice_("gone", ep("10.244.1.9"))]
    old = build_iptables(service_ports(services, slices), "n1")
    changed = [slice_("web", ep("10.244.1.5"), ep("10.244.2.5", ready=False)), *slices[1:]]
    _, stays, web = service_ports(services, changed)  # sorted by id: gone, stays, web
    # Same Services in another order: the shared chains come out identical, so nothing at all is written.
    assert render_diff(build_iptables(service_ports(services[::-1], slices[::-1]), "n1"), old) == ""

    text = render_diff(build_iptables(service_ports(services, changed), "n1"), old)
    lines = text.splitlines()
    assert lines == ["*nat", f":{service_chain(web)} - [0:0]", f":{endpoint_chain(web, web.endpoints[1])} - [0:0]",
                     *[line for line in lines if line.startswith(f"-A {service_chain(web)} ")],
                     f"-X {endpoint_chain(web, web.endpoints[1])}", "COMMIT"]
    assert len([line for line in lines if line.startswith("-A ")]) == 1  # one endpoint left, unconditional
    assert service_chain(stays) not in text and SERVICES not in text  # its entry in the portal chain is unchanged

    # A removed Service: its line leaves AIOKUBE-SERVICES (rewritten), its chains are flushed then deleted.
    without = build_iptables(service_ports(services[:2], changed), "n1")
    text = render_diff(without, build_iptables(service_ports(services, changed), "n1"))
    assert f":{SERVICES} - [0:0]" in text and "10.96.0.22" not in text
    assert text.count("\n-X AIOKUBE-") == 2  # its SVC and SEP chains
    assert f":{service_chain(stays)} " not in text and f"-A {service_chain(stays)} " not in text
    assert text.index("-X ") > text.index(f"-A {SERVICES} ")  # deleted only after nothing jumps there


@dataclass(frozen=True)
class RestoreRecorder(CommandRunner):
    """A host whose iptables accepts everything; keeps the restore transactions it was sent."""

    scripts: list[str] = field(default_factory=list)

    async def run(self, argv: list[str], stdin: str | None = None, *, check: bool = True) -> str:
        if argv[0].endswith("-restore"):
            self.scripts.append(stdin or "")
        if argv[0].endswith("-save"):
            return ":AIOKUBE-SVC-LEFTOVER - [0:0]\n" if "nat" in argv else ""
        return ""


async def test_applier_writes_everything_first_then_only_differences() -> None:
    recorder = RestoreRecorder()
    applier = IptablesApplier(recorder, "iptables-legacy")
    slices = [slice_("web", ep("10.244.1.5"), ep("10.244.2.5"))]
    await applier.apply_ports(service_ports([svc()], slices), "n1")
    assert "-X AIOKUBE-SVC-LEFTOVER" in recorder.scripts[0]  # first write: full, stale chains from the kernel
    await applier.apply_ports(service_ports([svc()], slices), "n1")
    assert len(recorder.scripts) == 1  # no change, no restore run
    slices[0]["endpoints"].append(ep("10.244.3.5"))
    await applier.apply_ports(service_ports([svc()], slices), "n1")
    assert SERVICES not in recorder.scripts[1] and "--probability 0.3333333333" in recorder.scripts[1]
    await applier.apply_ports(service_ports([svc()], slices), "n1", full=True)  # periodic repair: everything
    assert f":{SERVICES} - [0:0]" in recorder.scripts[2] and "AIOKUBE-POSTROUTING" in recorder.scripts[2]


# Runs inside `unshare -n`: a private loopback plus a veth holding two "pod" addresses, listeners
# that answer with their own address and the peer they saw, the real applier, real connections, cleanup.
KERNEL_SCRIPT = textwrap.dedent("""
    import asyncio, json, socket, subprocess, sys, threading
    from proxy.__main__ import cleanup
    from proxy.commands import CommandRunner
    from proxy.iptables import service_chain
    from proxy.iptables_applier import IptablesApplier
    from proxy.model import service_ports

    binary, services, slices, changed = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), \
        json.loads(sys.argv[4])
    for cmd in ("ip link set lo up", "ip link add v0 type veth peer name v1", "ip link set v0 up",
                "ip link set v1 up", "ip addr add 10.0.0.1/24 dev v0", "ip addr add 10.0.0.2/24 dev v0",
                "ip route add 10.96.0.0/12 dev v0"):
        subprocess.run(cmd.split(), check=True)

    def serve(ip):
        listener = socket.create_server((ip, 8080))
        while True:
            conn, peer = listener.accept()
            conn.sendall(f"{ip} {peer[0]}".encode())
            conn.close()

    for ip in ("10.0.0.1", "10.0.0.2"):
        threading.Thread(target=serve, args=(ip,), daemon=True).start()

    def ask(ip, port, source):
        with socket.create_connection((ip, port), timeout=3, source_address=(source, 0)) as conn:
            return conn.recv(100).decode().split()

    async def main():
        applier = IptablesApplier(CommandRunner(None), binary)
        await applier.check_usable()
        await applier.apply_ports(service_ports(services, slices), "n1")
        await applier.apply_ports(service_ports(services, slices), "n1")  # idempotent: no duplicated jumps
        result = {"balanced": [ask("10.96.0.20", 80, "10.0.0.1")[0] for _ in range(40)],
                  "affine": [ask("10.96.0.21", 80, "10.0.0.1")[0] for _ in range(15)],
                  "nodeport": ask("10.0.0.1", 30080, "10.0.0.1"),
                  "jumps": subprocess.run([binary + "-save", "-t", "nat"], capture_output=True, text=True)
                           .stdout.count("-j AIOKUBE-SERVICES")}
        try:
            ask("10.96.0.22", 80, "10.0.0.1")
            result["empty"] = "answered"
        except ConnectionRefusedError:
            result["empty"] = "refused"

        # Incremental: web loses an endpoint; sticky's chains are not in the restore text and keep their
        # packet counters (a chain named in a restore would be flushed, counters and all).
        sticky_chain = service_chain(service_ports(services, slices)[1])
        def sticky_packets():
            save = subprocess.run([binary + "-save", "-c", "-t", "nat"], capture_output=True, text=True).stdout
            return sum(int(line[1:].split(":")[0]) for line in save.splitlines()
                       if f"-A {sticky_chain} " in line)
        before = sticky_packets()
        await applier.apply_ports(service_ports(services, changed), "n1")
        result["incremental"] = {"sticky_in_script": sticky_chain in applier.last_script,
                                 "sticky_packets": [before, sticky_packets()],
                                 "after_change": sorted({ask("10.96.0.20", 80, "10.0.0.1")[0] for _ in range(20)})}
        await applier.apply_ports(service_ports(services, changed), "n1")
        result["incremental"]["noop_script"] = applier.last_script
        await applier.apply_ports(service_ports(services[:1], slices), "n1")  # "sticky" removed
        result["svc_chains_left"] = subprocess.run([binary + "-save", "-t", "nat"], capture_output=True,
                                                   text=True).stdout.count(":AIOKUBE-SVC-")
        await cleanup(CommandRunner(None))  # `--cleanup` with the default binary finds either backend's chains
        result["after_cleanup"] = "".join(
            subprocess.run([binary + "-save", "-t", t], capture_output=True, text=True).stdout
            for t in ("nat", "filter")).count("AIOKUBE")
        print(json.dumps(result))

    asyncio.run(main())
""")


@pytest.mark.parametrize("binary", ["iptables-nft", "iptables-legacy"])
def test_rules_dnat_real_traffic_in_a_private_namespace(binary: str) -> None:
    if shutil.which(binary) is None or shutil.which("unshare") is None:
        pytest.skip(f"SKIPPED LOUDLY: {binary}/unshare missing, the iptables fallback is not kernel-checked")
    services = [svc(kind="NodePort", ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]),
                svc("sticky", ip="10.96.0.21", **AFFINITY), svc("empty", ip="10.96.0.22")]
    slices = [slice_("web", ep("10.0.0.1"), ep("10.0.0.2")), slice_("sticky", ep("10.0.0.1"), ep("10.0.0.2"))]
    changed = [slice_("web", ep("10.0.0.1"), ep("10.0.0.2", ready=False)), slices[1]]
    result = subprocess.run(["unshare", "-n", sys.executable, "-c", KERNEL_SCRIPT, binary, json.dumps(services),
                             json.dumps(slices), json.dumps(changed)], capture_output=True, text=True, timeout=60,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert set(seen["balanced"]) == {"10.0.0.1", "10.0.0.2"}  # both endpoints get traffic (p of miss: 2^-39)
    assert len(set(seen["affine"])) == 1  # ClientIP affinity: one client, one backend
    assert seen["nodeport"][0] in ("10.0.0.1", "10.0.0.2")
    assert seen["empty"] == "refused"
    assert seen["jumps"] == 2  # PREROUTING and OUTPUT, once each after two syncs
    incremental = seen["incremental"]
    assert incremental["after_change"] == ["10.0.0.1"]  # the not-ready endpoint left the rotation
    assert not incremental["sticky_in_script"]  # the unchanged Service was not rewritten…
    assert incremental["sticky_packets"][0] >= 15 and \
        incremental["sticky_packets"][1] == incremental["sticky_packets"][0]  # …so its counters survived
    assert incremental["noop_script"] == ""  # nothing changed: nothing sent
    assert seen["svc_chains_left"] == 1  # the removed Service's chains were deleted (from the last write)
    assert seen["after_cleanup"] == 0


@dataclass(frozen=True)
class FakeRunner(CommandRunner):
    """Answers like a host whose nft may be unusable but whose iptables works; records what ran."""

    nft_works: bool = True
    ran: list[list[str]] = field(default_factory=list)

    async def run(self, argv: list[str], stdin: str | None = None, *, check: bool = True) -> str:
        self.ran.append(argv)
        if argv[0] == "nft" and not self.nft_works:
            raise CommandError(argv, 1, "Error: Could not process rule: Operation not supported")
        return ""


async def test_auto_mode_falls_back_to_iptables_only_when_nft_is_unusable() -> None:
    assert isinstance(await choose_backend(FakeRunner(nft_works=True), "auto", "iptables"), NftApplier)
    broken = FakeRunner(nft_works=False)
    chosen = await choose_backend(broken, "auto", "iptables-legacy")
    assert isinstance(chosen, IptablesApplier)
    assert ["iptables-legacy-save", "-t", "nat"] in broken.ran
    with pytest.raises(NftUnavailableError):
        await choose_backend(FakeRunner(nft_works=False), "nftables", "iptables")
    assert isinstance(await choose_backend(FakeRunner(nft_works=True), "iptables", "iptables"), IptablesApplier)
