"""Pods: defaults (incl. what Kubernetes' admission plugins add on create), validation, the update rules of a
running pod, status on create (phase Pending, qosClass), field selectors and the `kubectl get pods` table."""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, doc
from apiserver.strategies.kind import KindStrategy
from apiserver.strategies.podspec import default_pod_spec, validate_pod_spec
from apiserver.strategies.podtable import pod_status_cells, pod_wide_cells
from apiserver.strategies.quantity import parse_quantity

# DefaultTolerationSeconds admission: pods ride out a not-ready/unreachable node for 5 minutes.
DEFAULT_TOLERATION_SECONDS = 300
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"

UPDATABLE_POD_FIELDS = (
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
)
_QOS_RESOURCES = ("cpu", "memory")


def default_requests_from_limits(spec: Obj) -> None:
    """SetDefaults_Pod: a container that sets a limit but no request requests its limit."""
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            resources = container.get("resources") or {}
            limits = resources.get("limits") or {}
            if not limits:
                continue
            requests = resources.setdefault("requests", {})
            for name, value in limits.items():
                requests.setdefault(name, value)


def default_tolerations(spec: Obj) -> None:
    """DefaultTolerationSeconds admission: tolerate not-ready/unreachable NoExecute taints for 300 s."""
    tolerations = spec.get("tolerations") or []

    def tolerated(key: str) -> bool:
        for t in tolerations:
            if t.get("effect") not in (None, "", "NoExecute"):
                continue
            if (not t.get("key") and t.get("operator") == "Exists") or t.get("key") == key:
                return True
        return False

    added = [{"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}
             for key in (NOT_READY_TAINT, UNREACHABLE_TAINT) if not tolerated(key)]
    if added:
        spec["tolerations"] = [*tolerations, *added]


def qos_class(spec: Obj) -> str:
    """v1 qos.GetPodQOS over cpu and memory."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            resources = container.get("resources") or {}
            for name, value in (resources.get("requests") or {}).items():
                amount = parse_quantity(value)
                if name in _QOS_RESOURCES and amount:
                    requests[name] = requests.get(name, Fraction(0)) + amount
            found = set()
            for name, value in (resources.get("limits") or {}).items():
                amount = parse_quantity(value)
                if name in _QOS_RESOURCES and amount:
                    found.add(name)
                    limits[name] = limits.get(name, Fraction(0)) + amount
            if not set(_QOS_RESOURCES) <= found:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(name) == amount for name, amount in requests.items()) \
            and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def _sync_ip_lists(status: Obj) -> None:
    # v1 conversion keeps podIP/podIPs (and hostIP/hostIPs) consistent: the singular is the first of the plural.
    for single, plural in (("podIP", "podIPs"), ("hostIP", "hostIPs")):
        if status.get(single) and not status.get(plural):
            status[plural] = [{"ip": status[single]}]
        elif status.get(plural) and not status.get(single):
            status[single] = status[plural][0].get("ip", "")


class PodStrategy(KindStrategy):
    has_status_subresource = True
    tracks_generation = False

    columns = [
        Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", description="The aggregate status of the containers in this pod."),
        Column("Restarts", description="The number of times the containers in this pod have been restarted and "
                                       "when the last container in this pod has restarted."),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
        Column("IP", priority=1, description=doc("core.v1.PodStatus", "podIP")),
        Column("Node", priority=1, description=doc("core.v1.PodSpec", "nodeName")),
        Column("Nominated Node", priority=1, description=doc("core.v1.PodStatus", "nominatedNodeName")),
        Column("Readiness Gates", priority=1, description=doc("core.v1.PodSpec", "readinessGates")),
    ]

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        spec.setdefault("enableServiceLinks", True)
        default_requests_from_limits(spec)
        if spec.get("hostNetwork"):
            for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
                for port in container.get("ports") or []:
                    port.setdefault("hostPort", port.get("containerPort"))
        if isinstance(obj.get("status"), dict):
            _sync_ip_lists(obj["status"])

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        # What the ServiceAccount, Priority and DefaultTolerationSeconds admission plugins add in Kubernetes.
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
        spec["serviceAccount"] = spec["serviceAccountName"]
        if spec.get("priority") is None and not spec.get("priorityClassName"):
            spec["priority"] = 0
        if spec.get("priority") is not None:
            spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        default_tolerations(spec)
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}

    def validate_kind(self, obj: Obj) -> list[Cause]:
        return validate_pod_spec(obj.get("spec"), "spec")

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_pod_spec_update(new.get("spec") or {}, old.get("spec") or {})

    def selectable_fields(self, obj: Obj) -> dict[str, str]:
        fields = super().selectable_fields(obj)
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        fields.update({
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.restartPolicy": spec.get("restartPolicy", ""),
            "spec.schedulerName": spec.get("schedulerName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "spec.hostNetwork": "true" if spec.get("hostNetwork") else "false",
            "status.phase": status.get("phase", ""),
            "status.podIP": status.get("podIP", "") or ((status.get("podIPs") or [{}])[0].get("ip", "")),
            "status.nominatedNodeName": status.get("nominatedNodeName", ""),
        })
        return fields

    def cells(self, obj: Obj, now: float) -> list[Any]:
        ready, status, restarts = pod_status_cells(obj, now)
        return [ready, status, restarts, age_cell(obj, now), *pod_wide_cells(obj)]


def _toleration_key(t: Obj) -> tuple[Any, ...]:
    return (t.get("key", ""), t.get("operator", "Equal") or "Equal", t.get("value", ""), t.get("effect", ""))


def validate_pod_spec_update(new: Obj, old: Obj) -> list[Cause]:
    """ValidatePodUpdate: a pod's spec is fixed once created, except images, a shorter activeDeadlineSeconds,
    added tolerations and the negative-grace-period fix."""
    causes: list[Cause] = []
    new_deadline, old_deadline = new.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if old_deadline is not None:
        if new_deadline is None:
            causes.append(fe.invalid("spec.activeDeadlineSeconds", None,
                                     "must not update from a positive integer to nil value"))
        elif int(new_deadline) > int(old_deadline):
            causes.append(fe.invalid("spec.activeDeadlineSeconds", new_deadline,
                                     "must be less than or equal to previous value"))
    old_tolerations = {_toleration_key(t) for t in old.get("tolerations") or []}
    new_tolerations = {_toleration_key(t) for t in new.get("tolerations") or []}
    if not old_tolerations <= new_tolerations:
        causes.append(fe.forbidden("spec.tolerations", "existing toleration can not be modified except its "
                                                       "tolerationSeconds"))

    # Compare everything else: take the mutable parts from the old spec and require equality.
    mutated = copy.deepcopy(new)
    for key in ("containers", "initContainers"):
        old_containers = old.get(key) or []
        for i, container in enumerate(mutated.get(key) or []):
            if i < len(old_containers):
                container["image"] = old_containers[i].get("image")
    for key in ("activeDeadlineSeconds", "tolerations"):
        mutated.pop(key, None)
        if key in old:
            mutated[key] = old[key]
    old_grace = old.get("terminationGracePeriodSeconds")
    if old_grace is not None and int(old_grace) < 0 and mutated.get("terminationGracePeriodSeconds") == 1:
        mutated["terminationGracePeriodSeconds"] = old_grace
    if mutated != old:
        changed = sorted(k for k in set(mutated) | set(old) if mutated.get(k) != old.get(k))
        causes.append(fe.forbidden("spec", "pod updates may not change fields other than "
                                   + ",".join(UPDATABLE_POD_FIELDS)
                                   + "\n  changed: " + ", ".join(f"spec.{k}" for k in changed)))
    return causes
