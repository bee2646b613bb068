"""Service ClusterIP/NodePort allocation through the API (handlers/service_allocation.py), the `kubernetes`
Service written at start-up, and PodScheduled=True set by the binding subresource."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
from typing import Any

import httpx

from tests.support.apiserver import running_apiserver

SVC = "/api/v1/namespaces/default/services"
KUBECTL = "/usr/bin/kubectl"


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}}


def in_service_range(ip: str) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")


async def test_cluster_ip_is_allocated_and_shown_by_kubectl(api: httpx.AsyncClient, apiserver: str) -> None:
    created = await api.post(SVC, json=service("web"))
    assert created.status_code == 201, created.text
    spec = created.json()["spec"]
    assert in_service_range(spec["clusterIP"]) and spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["clusterIP"] != "10.96.0.1"  # the `kubernetes` Service's
    stored = (await api.get(f"{SVC}/web")).json()
    assert stored["spec"]["clusterIP"] == spec["clusterIP"]
    # Allocated values belong to no field manager, as in Kubernetes.
    assert "f:clusterIP" not in str(stored["metadata"]["managedFields"])
    done = await asyncio.to_thread(subprocess.run, [KUBECTL, "--server", apiserver, "get", "svc", "web",
                                                     "--no-headers"], capture_output=True, text=True, timeout=30,
                                   check=True)
    out = done.stdout.split()
    assert out[:5] == ["web", "ClusterIP", spec["clusterIP"], "<none>", "80/TCP"]


async def test_requested_ip_is_kept_and_a_taken_one_is_422(api: httpx.AsyncClient) -> None:
    first = await api.post(SVC, json=service("dns", clusterIP="10.96.0.10"))
    assert first.status_code == 201, first.text
    assert first.json()["spec"]["clusterIPs"] == ["10.96.0.10"]
    taken = await api.post(SVC, json=service("other", clusterIP="10.96.0.10"))
    assert taken.status_code == 422
    cause = taken.json()["details"]["causes"][0]
    assert cause["field"] == "spec.clusterIPs" and "provided IP is already allocated" in cause["message"]
    outside = await api.post(SVC, json=service("far", clusterIP="192.168.0.9"))
    assert outside.status_code == 422 and "not in the valid range" in outside.text
    # Re-creating the existing name with its own IP is AlreadyExists and must not free that IP.
    again = await api.post(SVC, json=service("dns", clusterIP="10.96.0.10"))
    assert again.status_code == 409
    still = await api.post(SVC, json=service("other", clusterIP="10.96.0.10"))
    assert still.status_code == 422


async def test_node_ports_are_allocated_kept_on_update_and_conflicts_are_422(api: httpx.AsyncClient) -> None:
    created = await api.post(SVC, json=service("np", type="NodePort", ports=[
        {"name": "http", "port": 80}, {"name": "fixed", "port": 81, "nodePort": 30081}]))
    assert created.status_code == 201, created.text
    ports = created.json()["spec"]["ports"]
    assert 30000 <= ports[0]["nodePort"] <= 32767 and ports[1]["nodePort"] == 30081
    clash = await api.post(SVC, json=service("np2", type="NodePort", ports=[{"port": 80, "nodePort": 30081}]))
    assert clash.status_code == 422
    assert clash.json()["details"]["causes"][0]["field"] == "spec.ports[0].nodePort"
    # kubectl apply of the manifest without the allocated port keeps it (merge patch without nodePort).
    patched = await api.patch(f"{SVC}/np", json={"metadata": {"labels": {"a": "b"}}},
                              headers={"Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200
    assert [p["nodePort"] for p in patched.json()["spec"]["ports"]] == [ports[0]["nodePort"], 30081]
    # Switching to ClusterIP frees the node ports: another Service can take 30081 now.
    body = patched.json()
    body["spec"]["type"] = "ClusterIP"
    body["spec"].pop("externalTrafficPolicy", None)
    for port in body["spec"]["ports"]:
        port.pop("nodePort")
    switched = await api.put(f"{SVC}/np", json=body)
    assert switched.status_code == 200, switched.text
    assert (await api.post(SVC, json=service("np2", type="NodePort",
                                             ports=[{"port": 80, "nodePort": 30081}]))).status_code == 201


async def test_delete_releases_the_ip_for_reuse(api: httpx.AsyncClient) -> None:
    assert (await api.post(SVC, json=service("a", clusterIP="10.96.0.20"))).status_code == 201
    assert (await api.post(SVC, json=service("b", clusterIP="10.96.0.20"))).status_code == 422
    assert (await api.delete(f"{SVC}/a")).status_code == 200
    reused = await api.post(SVC, json=service("b", clusterIP="10.96.0.20"))
    assert reused.status_code == 201, reused.text


async def test_delete_releases_the_node_port_for_reuse(api: httpx.AsyncClient) -> None:
    assert (await api.post(SVC, json=service("np-a", type="NodePort",
                                             ports=[{"port": 80, "nodePort": 30333}]))).status_code == 201
    clash = await api.post(SVC, json=service("np-b", type="NodePort", ports=[{"port": 80, "nodePort": 30333}]))
    assert clash.status_code == 422 and "provided port is already allocated" in clash.text
    assert (await api.delete(f"{SVC}/np-a")).status_code == 200
    reused = await api.post(SVC, json=service("np-b", type="NodePort", ports=[{"port": 80, "nodePort": 30333}]))
    assert reused.status_code == 201, reused.text
    assert reused.json()["spec"]["ports"][0]["nodePort"] == 30333


async def test_release_waits_for_the_last_finalizer(api: httpx.AsyncClient) -> None:
    body = service("held", clusterIP="10.96.0.21")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    assert (await api.post(SVC, json=body)).status_code == 201
    assert (await api.delete(f"{SVC}/held")).status_code == 200
    assert (await api.post(SVC, json=service("next", clusterIP="10.96.0.21"))).status_code == 422
    released = await api.patch(f"{SVC}/held", json={"metadata": {"finalizers": None}},
                               headers={"Content-Type": "application/merge-patch+json"})
    assert released.status_code == 200
    assert (await api.get(f"{SVC}/held")).status_code == 404
    assert (await api.post(SVC, json=service("next", clusterIP="10.96.0.21"))).status_code == 201


async def test_headless_external_name_and_dry_run_allocate_nothing(api: httpx.AsyncClient) -> None:
    headless = await api.post(SVC, json=service("headless", clusterIP="None", ports=[]))
    assert headless.status_code == 201, headless.text
    assert headless.json()["spec"]["clusterIP"] == "None"
    external = await api.post(SVC, json={"metadata": {"name": "ext"},
                                         "spec": {"type": "ExternalName", "externalName": "example.com"}})
    assert external.status_code == 201 and "clusterIP" not in external.json()["spec"]
    dry = await api.post(SVC, params={"dryRun": "All"}, json=service("dry", clusterIP="10.96.0.30"))
    assert dry.status_code == 201
    # Nothing was claimed: a real create of the same IP succeeds.
    assert (await api.post(SVC, json=service("real", clusterIP="10.96.0.30"))).status_code == 201


async def test_kubernetes_service_and_endpoints_point_at_the_server(api: httpx.AsyncClient, apiserver: str) -> None:
    port = int(apiserver.rsplit(":", 1)[1])
    svc = (await api.get(f"{SVC}/kubernetes")).json()
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]
    endpoints = (await api.get("/api/v1/namespaces/default/endpoints/kubernetes")).json()
    assert endpoints["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}],
                                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
    slice_ = (await api.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes")).json()
    assert slice_["endpoints"][0]["addresses"] == ["127.0.0.1"]
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    # Nobody else can have 10.96.0.1.
    assert (await api.post(SVC, json=service("x", clusterIP="10.96.0.1"))).status_code == 422


async def test_a_second_server_adds_its_address(etcd_url: str, etcd_prefix: str, apiserver: str,
                                                api: httpx.AsyncClient) -> None:
    with running_apiserver(etcd_url, etcd_prefix, advertise_address="192.0.2.7") as second:
        port = int(second.rsplit(":", 1)[1])
        endpoints = (await api.get("/api/v1/namespaces/default/endpoints/kubernetes")).json()
    ips = [a["ip"] for a in endpoints["subsets"][0]["addresses"]]
    assert ips == ["127.0.0.1", "192.0.2.7"]
    assert endpoints["subsets"][0]["ports"][0]["port"] == port  # the last server to start wins the port


async def test_binding_sets_pod_scheduled(api: httpx.AsyncClient) -> None:
    pods = "/api/v1/namespaces/default/pods"
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert (await api.post(pods, json=pod)).status_code == 201
    bound = await api.post(f"{pods}/p/binding", json={"apiVersion": "v1", "kind": "Binding",
                                                      "metadata": {"name": "p"}, "target": {"name": "n1"}})
    assert bound.status_code == 201, bound.text
    stored = (await api.get(f"{pods}/p")).json()
    assert stored["spec"]["nodeName"] == "n1"
    conditions = {c["type"]: c for c in stored["status"]["conditions"]}
    assert conditions["PodScheduled"]["status"] == "True" and conditions["PodScheduled"]["lastTransitionTime"]
