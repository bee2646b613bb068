"""Service, Namespace, Node, Secret, ConfigMap, Event, Lease, Endpoints, EndpointSlice, ServiceAccount and
PriorityClass strategies, plus the registry."""

from __future__ import annotations

import base64
import copy
from typing import Any

from aiokube.api.resources import RESOURCES
from apiserver.strategies.base import Strategy
from apiserver.strategies.registry import strategy_for
from apiserver.strategies.services import ServiceStrategy
from tests.unit.strategy_fixtures import NOW, by_field, create, strategy

CREATED = "2024-01-01T11:58:00Z"


def obj(kind: str, name: str = "x", namespace: str | None = "default", **fields: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "creationTimestamp": CREATED}
    if namespace:
        meta["namespace"] = namespace
    return {"kind": kind, "metadata": meta, **fields}


def test_registry_covers_every_kind() -> None:
    for info in RESOURCES:
        s = strategy_for(info)
        assert s.info is info
        assert strategy_for(info) is s  # one instance per resource
        if info.kind != "Binding":
            assert type(s) is not Strategy, info.kind
        assert s.has_status_subresource == ("status" in info.subresources), info.kind
    assert type(strategy("bindings")) is Strategy


# --- Service ------------------------------------------------------------------------------------------------

def service(**spec: Any) -> dict[str, Any]:
    return obj("Service", "web", spec={"selector": {"app": "web"}, "ports": [{"port": 80}], **spec})


def test_service_defaults() -> None:
    body = create("services", service())
    spec = body["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "clusterIP" not in spec  # allocation is the write handlers' (handlers/service_allocation.py)
    assert body["status"] == {"loadBalancer": {}}
    assert isinstance(strategy("services"), ServiceStrategy)
    assert strategy("services").validate(body) == []


def test_service_validation() -> None:
    s = strategy("services")
    body = create("services", service(ports=[{"port": 0}, {"port": 80, "protocol": "HTTP"}]))
    body["metadata"]["name"] = "1web"
    causes = by_field(s.validate(body))
    assert causes["metadata.name"].startswith('Invalid value: "1web": a DNS-1035 label')
    assert causes["spec.ports[0].name"] == "Required value"
    assert causes["spec.ports[0].port"] == "Required value"
    assert causes["spec.ports[1].protocol"] == 'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'
    no_ports = create("services", service(ports=[]))
    assert by_field(s.validate(no_ports))["spec.ports"] == "Required value"
    headless = create("services", service(ports=[], clusterIP="None"))
    assert s.validate(headless) == []
    cluster_ip_node_port = create("services", service(ports=[{"port": 80, "nodePort": 30001}]))
    assert by_field(s.validate(cluster_ip_node_port))["spec.ports[0].nodePort"] == \
        "Forbidden: may not be used when `type` is 'ClusterIP'"


def test_service_update_keeps_allocated_values_and_cluster_ip_is_immutable() -> None:
    s = strategy("services")
    old = create("services", service(type="NodePort", clusterIP="10.96.0.10",
                                      ports=[{"port": 80, "nodePort": 30080}]))
    new = service(type="NodePort", ports=[{"port": 80}])  # what `kubectl apply` of the manifest sends
    s.default(new)
    s.prepare_for_update(new, old)
    assert new["spec"]["clusterIP"] == "10.96.0.10" and new["spec"]["clusterIPs"] == ["10.96.0.10"]
    assert new["spec"]["ports"][0]["nodePort"] == 30080
    assert s.validate_update(new, old) == []
    changed = copy.deepcopy(new)
    changed["spec"]["clusterIP"] = changed["spec"]["clusterIPs"][0] = "10.96.0.11"
    assert by_field(s.validate_update(changed, old))["spec.clusterIPs[0]"] == \
        'Invalid value: []string{"10.96.0.11"}: may not change once set'


def test_service_update_before_defaults_matches_ports_by_default_protocol() -> None:
    s = strategy("services")
    old = create("services", service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    new = service(type="NodePort", ports=[{"port": 80}])
    s.prepare_for_update(new, old)  # the update handler defaults after prepare_for_update
    s.default(new)
    assert new["spec"]["ports"][0]["nodePort"] == 30080


def test_service_table_and_fields() -> None:
    s = strategy("services")
    body = create("services", service(type="NodePort", clusterIP="10.96.0.10",
                                      ports=[{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]))
    assert [(c["name"], c["priority"]) for c in s.table_columns()] == [
        ("Name", 0), ("Type", 0), ("Cluster-IP", 0), ("External-IP", 0), ("Port(s)", 0), ("Age", 0),
        ("Selector", 1)]
    assert s.table_row(body, NOW) == ["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "2m",
                                      "app=web"]
    lb = create("services", service(type="LoadBalancer"))
    assert s.table_row(lb, NOW)[2:4] == ["<none>", "<pending>"]
    assert s.selectable_fields(body)["spec.type"] == "NodePort"


# --- Namespace ----------------------------------------------------------------------------------------------

def test_namespace_create_and_table() -> None:
    s = strategy("namespaces")
    body = create("namespaces", obj("Namespace", "team-a", namespace=None))
    assert body["status"] == {"phase": "Active"}
    assert body["spec"] == {"finalizers": ["kubernetes"]}
    assert body["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert s.validate(body) == []
    assert s.table_row(body, NOW) == ["team-a", "Active", "2m"]
    assert s.selectable_fields(body)["status.phase"] == "Active"
    bad = create("namespaces", obj("Namespace", "team.a", namespace=None))
    assert by_field(s.validate(bad))["metadata.name"].startswith('Invalid value: "team.a": a lowercase RFC 1123 label')


def test_namespace_update_keeps_status_and_finalize_changes_only_finalizers() -> None:
    s = strategy("namespaces")
    old = create("namespaces", obj("Namespace", "team-a", namespace=None))
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Terminating"}
    new["spec"]["finalizers"] = []  # the /finalize handler goes through prepare_for_update: must survive it
    s.prepare_for_update(new, old)
    assert new["status"] == {"phase": "Active"} and new["spec"]["finalizers"] == []
    finalize = copy.deepcopy(old)
    finalize["spec"]["finalizers"] = []
    finalize["metadata"]["labels"]["x"] = "y"
    s.prepare_for_finalize(finalize, old)  # type: ignore[attr-defined]
    assert finalize["spec"]["finalizers"] == [] and "x" not in finalize["metadata"]["labels"]


# --- Node ---------------------------------------------------------------------------------------------------

def node(**status: Any) -> dict[str, Any]:
    return obj("Node", "n1", namespace=None, metadata_labels=None, spec={}, status=status)


def test_node_table_and_rules() -> None:
    s = strategy("nodes")
    body = create("nodes", node(
        capacity={"cpu": "2", "memory": "4Gi", "pods": "110"},
        conditions=[{"type": "Ready", "status": "True"}],
        addresses=[{"type": "InternalIP", "address": "192.168.1.5"}, {"type": "Hostname", "address": "n1"}],
        nodeInfo={"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                  "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.24"}))
    body["metadata"]["labels"] = {"node-role.kubernetes.io/control-plane": ""}
    assert body["status"]["allocatable"] == {"cpu": "2", "memory": "4Gi", "pods": "110"}
    assert s.validate(body) == []
    assert s.table_row(body, NOW) == ["n1", "Ready", "control-plane", "2m", "v1.32.0", "192.168.1.5", "<none>",
                                      "Debian GNU/Linux 12 (bookworm)", "6.1.0", "containerd://1.7.24"]
    body["spec"]["unschedulable"] = True
    body["status"]["conditions"][0]["status"] = "Unknown"
    assert s.table_row(body, NOW)[1] == "NotReady,SchedulingDisabled"
    assert s.selectable_fields(body)["spec.unschedulable"] == "true"
    body["spec"]["taints"] = [{"key": "dedicated", "value": "gpu"}]
    assert by_field(s.validate(body))["spec.taints[0].effect"] == "Required value"
    assert [c["name"] for c in s.table_columns()] == ["Name", "Status", "Roles", "Age", "Version", "Internal-IP",
                                                      "External-IP", "OS-Image", "Kernel-Version",
                                                      "Container-Runtime"]


# --- Secret / ConfigMap -------------------------------------------------------------------------------------

def test_secret_defaults_string_data_and_table() -> None:
    s = strategy("secrets")
    body = create("secrets", obj("Secret", "creds", data={"a": base64.b64encode(b"1").decode()},
                                 stringData={"b": "two"}))
    assert body["type"] == "Opaque"
    assert "stringData" not in body
    assert base64.b64decode(body["data"]["b"]) == b"two"
    assert s.validate(body) == []
    assert s.table_row(body, NOW) == ["creds", "Opaque", 2, "2m"]
    assert s.selectable_fields(body)["type"] == "Opaque"
    tls = create("secrets", obj("Secret", "tls", type="kubernetes.io/tls", data={}))
    assert set(by_field(s.validate(tls))) == {"data[tls.crt]", "data[tls.key]"}
    bad_key = create("secrets", obj("Secret", "k", stringData={"bad key": "v"}))
    assert by_field(s.validate(bad_key))["data[bad key]"].startswith(
        'Invalid value: "bad key": a valid config key must consist of alphanumeric characters')


def test_secret_and_configmap_immutability() -> None:
    s = strategy("secrets")
    old = create("secrets", obj("Secret", "x", immutable=True, stringData={"a": "1"}))
    new = copy.deepcopy(old)
    new["data"]["a"] = base64.b64encode(b"2").decode()
    assert by_field(s.validate_update(new, old))["data"] == "Forbidden: field is immutable when `immutable` is set"
    new = copy.deepcopy(old)
    new["type"] = "kubernetes.io/basic-auth"
    assert by_field(s.validate_update(new, old))["type"] == \
        'Invalid value: "kubernetes.io/basic-auth": field is immutable'
    c = strategy("configmaps")
    cm_old = create("configmaps", obj("ConfigMap", "cfg", immutable=True, data={"k": "v"}))
    cm_new = copy.deepcopy(cm_old)
    cm_new["immutable"] = False
    assert set(by_field(c.validate_update(cm_new, cm_old))) == {"immutable"}


def test_configmap_table_and_keys() -> None:
    c = strategy("configmaps")
    body = create("configmaps", obj("ConfigMap", "cfg", data={"a": "1", "b": "2"}, binaryData={"c": "AA=="}))
    assert c.validate(body) == []
    assert c.table_row(body, NOW) == ["cfg", 3, "2m"]
    assert c.tracks_generation is False
    bad = create("configmaps", obj("ConfigMap", "cfg", data={"..x": "1"}))
    assert "must not start with '..'" in by_field(c.validate(bad))["data[..x]"]


# --- Event --------------------------------------------------------------------------------------------------

def test_event_table_and_fields() -> None:
    s = strategy("events")
    body = obj("Event", "web-1.17a", involvedObject={"kind": "Pod", "name": "web-1", "namespace": "default",
                                                      "fieldPath": "spec.containers{web}"},
               reason="Pulled", message="Successfully pulled image ", type="Normal", count=3,
               source={"component": "kubelet", "host": "n1"},
               firstTimestamp="2024-01-01T11:50:00Z", lastTimestamp="2024-01-01T11:59:00Z")
    assert s.validate(body) == []
    assert [(c["name"], c["priority"]) for c in s.table_columns()] == [
        ("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1), ("Source", 1),
        ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1)]
    assert s.table_row(body, NOW) == ["60s", "Normal", "Pulled", "pod/web-1", "spec.containers{web}",
                                      "kubelet, n1", "Successfully pulled image", "10m", 3, "web-1.17a"]
    fields = s.selectable_fields(body)
    assert fields["involvedObject.name"] == "web-1" and fields["source"] == "kubelet" and fields["type"] == "Normal"
    body["involvedObject"]["namespace"] = "other"
    assert "involvedObject.namespace" in by_field(s.validate(body))


# --- Lease, Endpoints, EndpointSlice, ServiceAccount, PriorityClass --------------------------------------------

def test_rbac_kinds() -> None:
    role = create("roles", obj("Role", "reader", rules=[{"apiGroups": [""], "resources": ["pods"],
                                                         "verbs": ["get"]}]))
    assert strategy("roles").validate(role) == []
    assert strategy("roles").table_row(role, NOW) == ["reader", CREATED]
    assert [c["name"] for c in strategy("clusterroles").table_columns()] == ["Name", "Created At"]
    role["rules"] = [{"apiGroups": [""], "resources": ["pods"]}, {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]
    assert set(by_field(strategy("roles").validate(role))) == {"rules[0].verbs", "rules[1].nonResourceURLs"}
    binding = create("rolebindings", obj("RoleBinding", "read", roleRef={
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}, subjects=[
        {"kind": "ServiceAccount", "name": "default", "namespace": "default"},
        {"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}]))
    s = strategy("rolebindings")
    assert s.validate(binding) == []
    assert s.table_row(binding, NOW) == ["read", "Role/reader", "2m", "jane", "", "default/default"]
    new = copy.deepcopy(binding)
    new["roleRef"]["name"] = "writer"
    assert by_field(s.validate_update(new, binding))["roleRef"].endswith("cannot change roleRef")
    cluster_binding = copy.deepcopy(binding)
    cluster_binding["metadata"].pop("namespace")
    assert by_field(strategy("clusterrolebindings").validate(cluster_binding))["roleRef.kind"] == \
        'Unsupported value: "Role": supported values: "ClusterRole"'


def test_lease() -> None:
    s = strategy("leases")
    body = create("leases", obj("Lease", "n1", spec={"holderIdentity": "n1", "leaseDurationSeconds": 40}))
    assert s.validate(body) == []
    assert s.table_row(body, NOW) == ["n1", "n1", "2m"]
    body["spec"]["leaseDurationSeconds"] = 0
    assert by_field(s.validate(body))["spec.leaseDurationSeconds"] == "Invalid value: 0: must be greater than 0"


def test_endpoints() -> None:
    s = strategy("endpoints")
    addresses = [{"ip": f"10.1.0.{i}"} for i in range(1, 6)]
    body = create("endpoints", obj("Endpoints", "web", subsets=[{"addresses": addresses, "ports": [{"port": 80}]}]))
    assert body["subsets"][0]["ports"][0]["protocol"] == "TCP"
    assert s.validate(body) == []
    assert s.table_row(body, NOW) == ["web", "10.1.0.1:80,10.1.0.2:80,10.1.0.3:80 + 2 more...", "2m"]
    body["subsets"][0]["addresses"][0]["ip"] = "nope"
    assert "subsets[0].addresses[0].ip" in by_field(s.validate(body))
    empty = create("endpoints", obj("Endpoints", "none"))
    assert s.table_row(empty, NOW)[1] == "<none>"


def test_endpointslice() -> None:
    s = strategy("endpointslices")
    body = create("endpointslices", obj("EndpointSlice", "web-abc", addressType="IPv4",
                                        endpoints=[{"addresses": ["10.1.0.1"]}, {"addresses": ["10.1.0.2"]}],
                                        ports=[{"port": 80}]))
    assert body["ports"] == [{"port": 80, "protocol": "TCP", "name": ""}]
    assert s.validate(body) == []
    assert s.table_row(body, NOW) == ["web-abc", "IPv4", "80", "10.1.0.1,10.1.0.2", "2m"]
    new = copy.deepcopy(body)
    new["addressType"] = "IPv6"
    assert by_field(s.validate_update(new, body))["addressType"] == 'Invalid value: "IPv6": field is immutable'


def test_serviceaccount() -> None:
    s = strategy("serviceaccounts")
    body = create("serviceaccounts", obj("ServiceAccount", "default"))
    assert s.validate(body) == []
    assert s.table_row(body, NOW) == ["default", 0, "2m"]


def test_priorityclass() -> None:
    s = strategy("priorityclasses")
    body = create("priorityclasses", obj("PriorityClass", "high", namespace=None, value=1000))
    assert body["preemptionPolicy"] == "PreemptLowerPriority"
    assert s.validate(body) == []
    assert s.table_row(body, NOW) == ["high", 1000, False, "2m", "PreemptLowerPriority"]
    new = copy.deepcopy(body)
    new["value"] = 5
    assert by_field(s.validate_update(new, body))["value"] == "Forbidden: may not be changed in an update."
    reserved = create("priorityclasses", obj("PriorityClass", "system-mine", namespace=None, value=1))
    assert "metadata.name" in by_field(s.validate(reserved))
    namespaced = create("priorityclasses", obj("PriorityClass", "p", value=1))
    assert by_field(s.validate(namespaced))["metadata.namespace"] == "Forbidden: not allowed on this type"
