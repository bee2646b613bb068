"""Services: defaults, validation, keeping allocated values across updates, field selectors and the
`kubectl get services` table.

ClusterIP/NodePort allocation is not a strategy concern: it claims values in storage, so the write handlers do
it around their storage write (apiserver/handlers/service_allocation.py).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import meta, names
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, doc
from apiserver.strategies.kind import KindStrategy

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
PROTOCOLS = ("SCTP", "TCP", "UDP")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
IP_FAMILIES = ("IPv4", "IPv6")
# ClientIP affinity lasts 3 hours unless configured (Kubernetes' DefaultClientIPServiceAffinitySeconds).
DEFAULT_CLIENT_IP_AFFINITY_SECONDS = 10800


def needs_cluster_ip(service: Obj) -> bool:
    return (service.get("spec") or {}).get("type", "ClusterIP") != "ExternalName"


def needs_node_port(service: Obj) -> bool:
    return (service.get("spec") or {}).get("type") in ("NodePort", "LoadBalancer")


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _patch_allocated_values(new: Obj, old: Obj) -> None:
    """An update that omits allocated values (kubectl apply of a manifest without clusterIP) keeps them."""
    new_spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
    if needs_cluster_ip(old) and needs_cluster_ip(new) and not new_spec.get("clusterIP") and old_spec.get("clusterIP"):
        new_spec["clusterIP"] = old_spec["clusterIP"]
        if not new_spec.get("clusterIPs") and old_spec.get("clusterIPs"):
            new_spec["clusterIPs"] = list(old_spec["clusterIPs"])
    if needs_node_port(old) and needs_node_port(new):
        old_ports = old_spec.get("ports") or []
        for port in new_spec.get("ports") or []:
            if port.get("nodePort"):
                continue
            for old_port in old_ports:
                # Runs before defaulting: an unset protocol means TCP.
                same = old_port.get("port") == port.get("port") and \
                    (old_port.get("protocol") or "TCP") == (port.get("protocol") or "TCP")
                if same and old_port.get("nodePort"):
                    port["nodePort"] = old_port["nodePort"]
                    break
        if not new_spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort") and \
                new_spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy") == "Local":
            new_spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]


def _drop_type_dependent_fields(new: Obj, old: Obj) -> None:
    """Switching type away from what needed a field drops the value Kubernetes filled in (if unchanged)."""
    new_spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
    if needs_cluster_ip(old) and not needs_cluster_ip(new):
        if new_spec.get("clusterIP") == old_spec.get("clusterIP") and \
                new_spec.get("clusterIPs") == old_spec.get("clusterIPs"):
            new_spec.pop("clusterIP", None)
            new_spec.pop("clusterIPs", None)
        if new_spec.get("ipFamilies") == old_spec.get("ipFamilies"):
            new_spec.pop("ipFamilies", None)
        if new_spec.get("ipFamilyPolicy") == old_spec.get("ipFamilyPolicy"):
            new_spec.pop("ipFamilyPolicy", None)
        if new_spec.get("internalTrafficPolicy") == old_spec.get("internalTrafficPolicy"):
            new_spec.pop("internalTrafficPolicy", None)
    if needs_node_port(old) and not needs_node_port(new):
        old_node_ports = {p.get("nodePort") for p in old_spec.get("ports") or [] if p.get("nodePort")}
        new_node_ports = {p.get("nodePort") for p in new_spec.get("ports") or [] if p.get("nodePort")}
        if new_node_ports <= old_node_ports:
            for port in new_spec.get("ports") or []:
                port.pop("nodePort", None)
        if new_spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy"):
            new_spec.pop("externalTrafficPolicy", None)
    if old_spec.get("type") == "LoadBalancer" and new_spec.get("type") != "LoadBalancer":
        if new_spec.get("allocateLoadBalancerNodePorts") == old_spec.get("allocateLoadBalancerNodePorts"):
            new_spec.pop("allocateLoadBalancerNodePorts", None)
        new.setdefault("status", {})["loadBalancer"] = {}


class ServiceStrategy(KindStrategy):
    has_status_subresource = True
    tracks_generation = False

    columns = [
        Column("Type", description=doc("core.v1.ServiceSpec", "type")),
        Column("Cluster-IP", description=doc("core.v1.ServiceSpec", "clusterIP")),
        Column("External-IP", description=doc("core.v1.ServiceSpec", "externalIPs")),
        Column("Port(s)", description=doc("core.v1.ServiceSpec", "ports")),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
        Column("Selector", priority=1, description=doc("core.v1.ServiceSpec", "selector")),
    ]

    def check_name(self, name: str) -> list[str]:
        return names.dns1035_label(name)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        kind = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["sessionAffinity"] == "ClientIP":
            client_ip = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
            client_ip.setdefault("timeoutSeconds", DEFAULT_CLIENT_IP_AFFINITY_SECONDS)
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")
        if kind in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if kind == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        if kind != "ExternalName":
            spec.setdefault("internalTrafficPolicy", "Cluster")
            if spec.get("clusterIP") and not spec.get("clusterIPs"):
                spec["clusterIPs"] = [spec["clusterIP"]]
            elif spec.get("clusterIPs") and not spec.get("clusterIP"):
                spec["clusterIP"] = spec["clusterIPs"][0]
            headless_without_selector = spec.get("clusterIP") == "None" and not spec.get("selector")
            spec.setdefault("ipFamilyPolicy", "RequireDualStack" if headless_without_selector else "SingleStack")
            if not spec.get("ipFamilies"):
                spec["ipFamilies"] = ["IPv4"]

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        _patch_allocated_values(new, old)
        _drop_type_dependent_fields(new, old)

    def validate_kind(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        kind = spec.get("type")
        if kind not in SERVICE_TYPES:
            causes.append(fe.not_supported("spec.type", kind, SERVICE_TYPES) if kind else fe.required("spec.type"))
        headless = spec.get("clusterIP") == "None"
        ports = spec.get("ports") or []
        if not ports and kind != "ExternalName" and not headless:
            causes.append(fe.required("spec.ports"))
        causes += self._validate_ports(ports, kind or "")
        if kind == "ExternalName":
            external_name = spec.get("externalName") or ""
            if not external_name:
                causes.append(fe.required("spec.externalName"))
            else:
                causes += [fe.invalid("spec.externalName", external_name, msg)
                           for msg in names.dns1123_subdomain(external_name.rstrip("."))]
            if spec.get("clusterIP"):
                causes.append(fe.forbidden("spec.clusterIP", "may not be set for ExternalName services"))
        causes += meta.validate_labels(spec.get("selector"), "spec.selector")
        for i, ip in enumerate(spec.get("clusterIPs") or []):
            if ip != "None" and not _valid_ip(ip):
                causes.append(fe.invalid(f"spec.clusterIPs[{i}]", ip, "must be a valid IP address, (e.g. 10.9.8.7 "
                                                                        "or 2001:db8::ffff)"))
        cluster_ips = spec.get("clusterIPs") or []
        if spec.get("clusterIP") and cluster_ips and cluster_ips[0] != spec["clusterIP"]:
            causes.append(fe.invalid("spec.clusterIPs", fe.GoLiteral(fe.go_value(cluster_ips)),
                                     "first value must match `clusterIP`"))
        affinity = spec.get("sessionAffinity")
        if affinity not in SESSION_AFFINITIES:
            causes.append(fe.not_supported("spec.sessionAffinity", affinity, SESSION_AFFINITIES))
        for field in ("externalTrafficPolicy", "internalTrafficPolicy"):
            value = spec.get(field)
            if value and value not in TRAFFIC_POLICIES:
                causes.append(fe.not_supported(f"spec.{field}", value, TRAFFIC_POLICIES))
        if spec.get("externalTrafficPolicy") and kind not in ("NodePort", "LoadBalancer"):
            causes.append(fe.invalid("spec.externalTrafficPolicy", spec["externalTrafficPolicy"],
                                     "may only be set when `type` is 'NodePort' or 'LoadBalancer'"))
        policy = spec.get("ipFamilyPolicy")
        if policy and policy not in IP_FAMILY_POLICIES:
            causes.append(fe.not_supported("spec.ipFamilyPolicy", policy, IP_FAMILY_POLICIES))
        for i, family in enumerate(spec.get("ipFamilies") or []):
            if family not in IP_FAMILIES:
                causes.append(fe.not_supported(f"spec.ipFamilies[{i}]", family, IP_FAMILIES))
        return causes

    @staticmethod
    def _validate_ports(ports: list[Obj], kind: str) -> list[Cause]:
        causes: list[Cause] = []
        seen_names: set[str] = set()
        seen_ports: set[tuple[Any, Any]] = set()
        for i, port in enumerate(ports):
            path = f"spec.ports[{i}]"
            name = port.get("name") or ""
            if len(ports) > 1 and not name:
                causes.append(fe.required(f"{path}.name"))
            elif name:
                causes += [fe.invalid(f"{path}.name", name, msg) for msg in names.dns1123_label(name)]
                if name in seen_names:
                    causes.append(fe.duplicate(f"{path}.name", name))
                seen_names.add(name)
            number = port.get("port")
            if not number:
                causes.append(fe.required(f"{path}.port"))
            else:
                causes += [fe.invalid(f"{path}.port", number, msg) for msg in names.port_number(int(number))]
            protocol = port.get("protocol")
            if protocol not in PROTOCOLS:
                causes.append(fe.not_supported(f"{path}.protocol", protocol, PROTOCOLS))
            key = (number, protocol)
            if key in seen_ports:
                causes.append(fe.duplicate(path, fe.GoLiteral(f"core.ServicePort{{Port:{number}, "
                                                              f'Protocol:"{protocol}"}}')))
            seen_ports.add(key)
            target = port.get("targetPort")
            if isinstance(target, int):
                causes += [fe.invalid(f"{path}.targetPort", target, msg) for msg in names.port_number(target)]
            elif isinstance(target, str) and target:
                causes += [fe.invalid(f"{path}.targetPort", target, msg) for msg in names.port_name(target)]
            node_port = port.get("nodePort")
            if node_port:
                if kind not in ("NodePort", "LoadBalancer"):
                    causes.append(fe.forbidden(f"{path}.nodePort", f"may not be used when `type` is '{kind}'"))
                else:
                    causes += [fe.invalid(f"{path}.nodePort", node_port, msg)
                               for msg in names.port_number(int(node_port))]
        return causes

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        if not (needs_cluster_ip(new) and needs_cluster_ip(old)):
            return []
        new_ips = (new.get("spec") or {}).get("clusterIPs") or []
        old_ips = (old.get("spec") or {}).get("clusterIPs") or []
        if old_ips and new_ips[:1] != old_ips[:1]:
            return [fe.invalid("spec.clusterIPs[0]", fe.GoLiteral(fe.go_value(new_ips)), "may not change once set")]
        return []

    def selectable_fields(self, obj: Obj) -> dict[str, str]:
        fields = super().selectable_fields(obj)
        spec = obj.get("spec") or {}
        fields["spec.clusterIP"] = spec.get("clusterIP", "")
        fields["spec.type"] = spec.get("type", "")
        return fields

    def cells(self, obj: Obj, now: float) -> list[Any]:
        spec = obj.get("spec") or {}
        cluster_ips = spec.get("clusterIPs") or []
        ports = ",".join(
            f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', 'TCP')}" if p.get("nodePort")
            else f"{p.get('port')}/{p.get('protocol', 'TCP')}"
            for p in spec.get("ports") or [])
        return [spec.get("type", ""), cluster_ips[0] if cluster_ips else "<none>", external_ip(obj), ports or "<none>",
                age_cell(obj, now), meta.format_labels(spec.get("selector"))]


def external_ip(service: Obj) -> str:
    """getServiceExternalIP as printed by Kubernetes (the server always renders the wide form)."""
    spec, status = service.get("spec") or {}, service.get("status") or {}
    external_ips = spec.get("externalIPs") or []
    kind = spec.get("type")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else "<none>"
    if kind == "LoadBalancer":
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        lb_ips = sorted({i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")})
        if external_ips:
            return ",".join([*lb_ips, *external_ips])
        return ",".join(lb_ips) if lb_ips else "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"
