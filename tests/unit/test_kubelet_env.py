"""Container environment and CRI specs built from a pod."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from aiokube.api.errors import ApiError
from kubelet.cri import pb
from kubelet.env import ContainerConfigError, SourceCache, container_env, expand
from kubelet.specs import NodeSettings, container_config, dns_config, linux_resources, sandbox_config


class Objects:
    def __init__(self, objects: dict[tuple[str, str], dict]) -> None:
        self.objects = objects
        self.calls = 0

    async def get(self, resource: str, name: str, namespace: str | None = None) -> dict:
        self.calls += 1
        if (resource, name) not in self.objects:
            raise ApiError(404, "not found")
        return self.objects[(resource, name)]


POD: dict[str, Any] = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
       "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                                                   "resources": {"limits": {"cpu": "250m", "memory": "64Mi"},
                                                                 "requests": {"cpu": "100m"}}}]},
       "status": {"podIP": "10.0.0.5"}}


def test_expand() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)-$(C)-$$(A)", env) == "1-two-$(C)-$(A)"


async def test_env_sources() -> None:
    api = Objects({("configmaps", "cm"): {"data": {"K1": "v1", "K2": "v2"}},
                   ("secrets", "s"): {"data": {"pw": base64.b64encode(b"hunter2").decode()}}})
    container = {"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                 "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                         {"name": "ONE", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "K1"}}},
                         {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                         {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                         {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                                           "divisor": "1m"}}},
                         {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x",
                                                                               "optional": True}}},
                         {"name": "DERIVED", "value": "$(ONE)/$(PW)"}]}
    sources = SourceCache(api, "ns")
    env = await container_env(POD, container, sources, {"cpu": "2"})
    assert env == {"CM_K1": "v1", "CM_K2": "v2", "PW": "hunter2", "ONE": "v1", "IP": "10.0.0.5", "APP": "web",
                   "CPU": "250", "DERIVED": "v1/hunter2"}
    assert api.calls == 3  # cm fetched once for two uses (plus one miss)


async def test_missing_configmap_is_a_config_error() -> None:
    container = {"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}
    with pytest.raises(ContainerConfigError, match='configmap "nope" not found'):
        await container_env(POD, container, SourceCache(Objects({}), "ns"), {})


def test_resources_to_cgroup_values() -> None:
    r = linux_resources(POD["spec"]["containers"][0])
    assert (r.cpu_period, r.cpu_quota, r.cpu_shares, r.memory_limit_in_bytes) == (100000, 25000, 102, 64 << 20)


def test_sandbox_and_container_config() -> None:
    node = NodeSettings(node_name="n1", root_dir="/var/lib/aiokube", cgroup_prefix="aik",
                        cluster_dns=["10.96.0.10"])
    pod = {**POD, "spec": {**POD["spec"], "containers": [{**POD["spec"]["containers"][0],
                                                           "ports": [{"containerPort": 80, "hostPort": 8080}],
                                                           "securityContext": {"runAsUser": 1000}}]}}
    sb = sandbox_config(pod, node, attempt=2)
    assert sb.metadata.attempt == 2 and sb.hostname == "p"
    assert sb.linux.cgroup_parent == "/aik/podu1"
    assert sb.port_mappings[0].host_port == 8080 and sb.port_mappings[0].protocol == pb.TCP
    assert list(sb.dns_config.servers) == ["10.96.0.10"]
    assert list(sb.dns_config.searches)[:3] == ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert sb.labels["io.kubernetes.pod.uid"] == "u1" and sb.labels["app"] == "web"
    cc = container_config(pod, pod["spec"]["containers"][0], restart_count=3, env={"A": "1"}, mounts=[],
                          image="busybox", node=node, is_init=False)
    assert cc.log_path == "c/3.log" and cc.metadata.attempt == 3
    assert cc.annotations["io.kubernetes.container.restartCount"] == "3"
    assert cc.linux.security_context.run_as_user.value == 1000
    host = sandbox_config({**pod, "spec": {**pod["spec"], "hostNetwork": True}}, node, 0)
    assert host.hostname == "" and host.linux.security_context.namespace_options.network == pb.NODE


def test_dns_policies_and_dns_config(tmp_path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n")
    node = NodeSettings(node_name="n1", root_dir="/r", cluster_dns=["10.96.0.10"], resolv_conf=str(host))

    def dns(**spec: object) -> tuple[list[str], list[str], list[str]]:
        cfg = dns_config({**POD, "spec": {**POD["spec"], **spec}}, node)
        return list(cfg.servers), list(cfg.searches), list(cfg.options)

    cluster = (["10.96.0.10"], ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"],
               ["ndots:5"])
    assert dns() == cluster  # ClusterFirst is the default
    assert dns(dnsPolicy="Default") == (["192.0.2.53"], ["corp.example"], ["timeout:2"])  # the node's resolver
    assert dns(hostNetwork=True) == dns(dnsPolicy="Default")  # ClusterFirst with hostNetwork falls back
    assert dns(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet") == cluster
    assert dns(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["a.example"],
                                            "options": [{"name": "edns0"}]}) == (["1.1.1.1"], ["a.example"],
                                                                                  ["edns0"])
    # dnsConfig merges: duplicates dropped, a same-named option replaced.
    merged = dns(dnsConfig={"nameservers": ["10.96.0.10", "9.9.9.9"], "searches": ["svc.cluster.local", "x"],
                            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    assert merged == (["10.96.0.10", "9.9.9.9"], [*cluster[1], "x"], ["ndots:2", "edns0"])

