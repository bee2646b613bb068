"""Nodes: status defaults, validation (taints, podCIDR), update rules, `spec.unschedulable` field selector and
the `kubectl get nodes` table."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import names
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, doc
from apiserver.strategies.kind import KindStrategy

TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
NODE_ROLE_LABEL = "kubernetes.io/role"


def node_roles(node: Obj) -> list[str]:
    roles = set()
    for key, value in ((node.get("metadata") or {}).get("labels") or {}).items():
        if key.startswith(NODE_ROLE_PREFIX) and key[len(NODE_ROLE_PREFIX):]:
            roles.add(key[len(NODE_ROLE_PREFIX):])
        elif key == NODE_ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def node_status_text(node: Obj) -> str:
    """Ready / NotReady / Unknown, plus SchedulingDisabled for a cordoned node."""
    status = []
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            status = ["Ready" if condition.get("status") == "True" else "NotReady"]
    if not status:
        status = ["Unknown"]
    if (node.get("spec") or {}).get("unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def _address(node: Obj, kind: str) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == kind:
            return str(address.get("address", ""))
    return "<none>"


class NodeStrategy(KindStrategy):
    has_status_subresource = True
    tracks_generation = False

    columns = [
        Column("Status", description="The status of the node"),
        Column("Roles", description="The roles of the node"),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
        Column("Version", description=doc("core.v1.NodeSystemInfo", "kubeletVersion")),
        Column("Internal-IP", priority=1, description=doc("core.v1.NodeStatus", "addresses")),
        Column("External-IP", priority=1, description=doc("core.v1.NodeStatus", "addresses")),
        Column("OS-Image", priority=1, description=doc("core.v1.NodeSystemInfo", "osImage")),
        Column("Kernel-Version", priority=1, description=doc("core.v1.NodeSystemInfo", "kernelVersion")),
        Column("Container-Runtime", priority=1, description=doc("core.v1.NodeSystemInfo", "containerRuntimeVersion")),
    ]

    def default(self, obj: Obj) -> None:
        status = obj.get("status")
        # SetDefaults_NodeStatus: what is allocatable defaults to the whole capacity.
        if isinstance(status, dict) and status.get("capacity") and not status.get("allocatable"):
            status["allocatable"] = dict(status["capacity"])

    def prepare_for_create(self, obj: Obj) -> None:
        """A node registers with its status (the kubelet sends capacity, addresses, conditions): kept."""

    def validate_kind(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        seen: set[tuple[str, str]] = set()
        for i, taint in enumerate(spec.get("taints") or []):
            path = f"spec.taints[{i}]"
            key = taint.get("key") or ""
            if not key:
                causes.append(fe.required(f"{path}.key"))
            else:
                causes += [fe.invalid(f"{path}.key", key, msg) for msg in names.qualified_name(key)]
            value = taint.get("value") or ""
            causes += [fe.invalid(f"{path}.value", value, msg) for msg in names.label_value(value)]
            effect = taint.get("effect")
            if not effect:
                causes.append(fe.required(f"{path}.effect"))
            elif effect not in TAINT_EFFECTS:
                causes.append(fe.not_supported(f"{path}.effect", effect, TAINT_EFFECTS))
            if (key, effect or "") in seen:
                causes.append(fe.duplicate(f"{path}", fe.GoLiteral(f'core.Taint{{Key:"{key}", Effect:"{effect}"}}')))
            seen.add((key, effect or ""))
        cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
        for i, cidr in enumerate(cidrs):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                causes.append(fe.invalid(f"spec.podCIDRs[{i}]", cidr, "must be a valid CIDR value, (e.g. 10.9.8.0/24 "
                                                                       "or 2001:db8::/64)"))
        return causes

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        causes = []
        if old_spec.get("podCIDRs") and new_spec.get("podCIDRs") != old_spec.get("podCIDRs"):
            causes.append(fe.forbidden("spec.podCIDRs", "node updates may not change podCIDR except from \"\" to "
                                                        "valid"))
        if old_spec.get("providerID") and new_spec.get("providerID") != old_spec.get("providerID"):
            causes.append(fe.forbidden("spec.providerID", "node updates may not change providerID except from \"\" "
                                                          "to valid"))
        return causes

    def selectable_fields(self, obj: Obj) -> dict[str, str]:
        fields = super().selectable_fields(obj)
        fields["spec.unschedulable"] = "true" if (obj.get("spec") or {}).get("unschedulable") else "false"
        return fields

    def cells(self, obj: Obj, now: float) -> list[Any]:
        info = (obj.get("status") or {}).get("nodeInfo") or {}
        return [node_status_text(obj), ",".join(node_roles(obj)) or "<none>", age_cell(obj, now),
                info.get("kubeletVersion", ""), _address(obj, "InternalIP"), _address(obj, "ExternalIP"),
                info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
                info.get("containerRuntimeVersion") or "<unknown>"]
