"""Translate a pod into CRI configs: the PodSandboxConfig (network, DNS, ports, cgroup parent) and each
container's ContainerConfig (image, command, env, mounts, resources, security context, identifying labels).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from aiokube.api.quantity import int_value, milli_value
from aiokube.api.types import Obj
from kubelet import labels as L
from kubelet.cri import pb
from kubelet.env import expand

CPU_PERIOD_US = 100_000  # the CFS period the kubelet uses; quota = limit in cores * period
MIN_CPU_SHARES = 2


@dataclass
class NodeSettings:
    """What sandbox and container configs need from the node's configuration."""

    node_name: str
    root_dir: str
    cgroup_prefix: str = "aiokube"
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"
    resolv_conf: str = "/etc/resolv.conf"

    def log_directory(self, pod: Obj) -> str:
        meta = pod["metadata"]
        return os.path.join(os.path.abspath(self.root_dir), "logs",
                            f"{meta.get('namespace', 'default')}_{meta['name']}_{meta['uid']}")

    def cgroup_parent(self, uid: str) -> str:
        return f"/{self.cgroup_prefix}/pod{uid}"


def _host_resolv(path: str) -> tuple[list[str], list[str], list[str]]:
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if not parts or parts[0].startswith("#"):
                    continue
                if parts[0] == "nameserver":
                    servers.extend(parts[1:2])
                elif parts[0] in ("search", "domain"):
                    searches = parts[1:]
                elif parts[0] == "options":
                    options.extend(parts[1:])
    except OSError:
        pass
    return servers, searches, options


def dns_config(pod: Obj, node: NodeSettings) -> pb.DNSConfig:
    spec = pod.get("spec", {})
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_net = bool(spec.get("hostNetwork"))
    servers, searches, options = _host_resolv(node.resolv_conf)
    use_cluster = node.cluster_dns and (policy == "ClusterFirstWithHostNet" or
                                        (policy == "ClusterFirst" and not host_net))
    if use_cluster:
        ns = pod["metadata"].get("namespace", "default")
        d = node.cluster_domain
        servers = list(node.cluster_dns)
        searches = [f"{ns}.svc.{d}", f"svc.{d}", d, *searches]
        options = ["ndots:5"]
    elif policy == "None":
        servers, searches, options = [], [], []
    # dnsConfig adds to the policy's result as the kubelet does: duplicate servers and search domains dropped,
    # an option of the same name replaced (dnsConfig's `ndots` wins over the policy's ndots:5).
    extra = spec.get("dnsConfig") or {}
    servers = list(dict.fromkeys([*servers, *(extra.get("nameservers") or [])]))
    searches = list(dict.fromkeys([*searches, *(extra.get("searches") or [])]))
    merged = {o.split(":", 1)[0]: o for o in options}
    for opt in extra.get("options") or []:
        merged[opt["name"]] = f"{opt['name']}:{opt['value']}" if opt.get("value") else opt["name"]
    return pb.DNSConfig(servers=servers, searches=searches, options=list(merged.values()))


def port_mappings(pod: Obj) -> list[pb.PortMapping]:
    protocols = {"TCP": pb.TCP, "UDP": pb.UDP, "SCTP": pb.SCTP}
    mappings = []
    for c in pod.get("spec", {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                mappings.append(pb.PortMapping(protocol=protocols.get(p.get("protocol", "TCP"), pb.TCP),
                                               container_port=p["containerPort"], host_port=p["hostPort"],
                                               host_ip=p.get("hostIP", "")))
    return mappings


def namespace_options(pod: Obj) -> pb.NamespaceOption:
    spec = pod.get("spec", {})
    return pb.NamespaceOption(
        network=pb.NODE if spec.get("hostNetwork") else pb.POD,
        pid=pb.NODE if spec.get("hostPID") else (pb.POD if spec.get("shareProcessNamespace") else pb.CONTAINER),
        ipc=pb.NODE if spec.get("hostIPC") else pb.POD,
    )


def _all_containers(pod: Obj) -> list[Obj]:
    spec = pod.get("spec", {})
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def sandbox_config(pod: Obj, node: NodeSettings, attempt: int) -> pb.PodSandboxConfig:
    meta, spec = pod["metadata"], pod.get("spec", {})
    host_net = bool(spec.get("hostNetwork"))
    # A hostNetwork sandbox must have an empty hostname (containerd then uses the node's).
    hostname = "" if host_net else (spec.get("hostname") or meta["name"])[:63]
    pod_sc = spec.get("securityContext") or {}
    privileged = any((c.get("securityContext") or {}).get("privileged") for c in _all_containers(pod))
    security = pb.LinuxSandboxSecurityContext(namespace_options=namespace_options(pod), privileged=privileged)
    if pod_sc.get("runAsUser") is not None:
        security.run_as_user.value = int(pod_sc["runAsUser"])
        # containerd refuses a group without a user ("user group is specified without user"); the pause
        # process's group does not matter, so the sandbox only takes it together with a user.
        if pod_sc.get("runAsGroup") is not None:
            security.run_as_group.value = int(pod_sc["runAsGroup"])
    security.supplemental_groups.extend(int(g) for g in pod_sc.get("supplementalGroups") or [])
    annotations = {k: str(v) for k, v in (meta.get("annotations") or {}).items()}
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=meta["name"], uid=meta["uid"],
                                       namespace=meta.get("namespace", "default"), attempt=attempt),
        hostname=hostname,
        log_directory=node.log_directory(pod),
        dns_config=dns_config(pod, node),
        port_mappings=port_mappings(pod),
        labels={**{k: str(v) for k, v in (meta.get("labels") or {}).items()},
                **L.sandbox_labels(pod, node.node_name)},
        annotations=annotations,
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=node.cgroup_parent(meta["uid"]), security_context=security),
    )


def linux_resources(container: Obj) -> pb.LinuxContainerResources:
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    out = pb.LinuxContainerResources(cpu_period=CPU_PERIOD_US)
    cpu_request = requests.get("cpu", limits.get("cpu"))
    out.cpu_shares = max(MIN_CPU_SHARES, milli_value(cpu_request) * 1024 // 1000) if cpu_request else MIN_CPU_SHARES
    if "cpu" in limits:
        out.cpu_quota = max(1000, milli_value(limits["cpu"]) * CPU_PERIOD_US // 1000)
    if "memory" in limits:
        out.memory_limit_in_bytes = int_value(limits["memory"])
    return out


def container_log_path(name: str, restart_count: int) -> str:
    """Relative to the sandbox's log directory, as the kubelet lays it out."""
    return f"{name}/{restart_count}.log"


def container_config(
    pod: Obj, container: Obj, *, restart_count: int, env: dict[str, str], mounts: list[pb.Mount],
    image: str, node: NodeSettings, is_init: bool,
) -> pb.ContainerConfig:
    spec = pod.get("spec", {})
    pod_sc = spec.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    security = pb.LinuxContainerSecurityContext(
        privileged=bool(sc.get("privileged")),
        namespace_options=namespace_options(pod),
        readonly_rootfs=bool(sc.get("readOnlyRootFilesystem")),
    )
    run_as_user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    run_as_group = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    if run_as_user is not None:
        security.run_as_user.value = int(run_as_user)
    if run_as_group is not None:
        security.run_as_group.value = int(run_as_group)
    security.supplemental_groups.extend(int(g) for g in pod_sc.get("supplementalGroups") or [])
    caps = sc.get("capabilities") or {}
    if caps:
        security.capabilities.add_capabilities.extend(caps.get("add") or [])
        security.capabilities.drop_capabilities.extend(caps.get("drop") or [])
    annotations = {
        L.CONTAINER_HASH: L.container_hash(container),
        L.RESTART_COUNT: str(restart_count),
        L.TERMINATION_GRACE: str(spec.get("terminationGracePeriodSeconds", 30)),
    }
    if is_init:
        annotations[L.INIT_CONTAINER] = "true"
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=container["name"], attempt=restart_count),
        image=pb.ImageSpec(image=image),
        command=[expand(str(a), env) for a in container.get("command") or []],
        args=[expand(str(a), env) for a in container.get("args") or []],
        working_dir=container.get("workingDir", ""),
        envs=[pb.KeyValue(key=k, value=v) for k, v in env.items()],
        mounts=mounts,
        labels=L.container_labels(pod, container["name"], node.node_name),
        annotations=annotations,
        log_path=container_log_path(container["name"], restart_count),
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
        linux=pb.LinuxContainerConfig(resources=linux_resources(container), security_context=security),
    )
