"""Pod strategy: defaults, create-time status and admission additions, validation, update rules, field
selectors and the `kubectl get pods` cells."""

from __future__ import annotations

import copy
from typing import Any

from tests.unit.strategy_fixtures import NOW, by_field, create, strategy

PODS = strategy("pods")


def pod(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-01-01T11:55:00Z"},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
    }
    body["spec"].update(spec)
    return body


def created(**spec: Any) -> dict[str, Any]:
    return create("pods", pod(**spec))


def test_defaults_match_kubernetes() -> None:
    body = pod(containers=[{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
                            "livenessProbe": {"httpGet": {"port": 80}}}])
    PODS.default(body)
    spec = body["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    container = spec["containers"][0]
    assert container["imagePullPolicy"] == "Always"  # no tag means :latest
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert container["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                          "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}


def test_pull_policy_by_tag() -> None:
    from apiserver.strategies.podspec import default_pull_policy

    assert default_pull_policy("nginx:latest") == "Always"
    assert default_pull_policy("registry:5000/nginx") == "Always"
    assert default_pull_policy("registry:5000/nginx:1.2") == "IfNotPresent"
    assert default_pull_policy("nginx@sha256:abc") == "IfNotPresent"


def test_defaulting_is_idempotent() -> None:
    once = created()
    twice = copy.deepcopy(once)
    PODS.default(twice)
    assert twice == once


def test_create_sets_status_admission_fields_and_tolerations() -> None:
    body = created()
    assert body["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    spec = body["spec"]
    assert spec["priority"] == 0
    assert spec["serviceAccountName"] == "default"
    assert spec["tolerations"] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
    ]


def test_existing_toleration_is_not_duplicated() -> None:
    body = created(tolerations=[{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                 "effect": "NoExecute", "tolerationSeconds": 10}])
    keys = [t["key"] for t in body["spec"]["tolerations"]]
    assert keys == ["node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"]


def test_qos_classes() -> None:
    guaranteed = created(containers=[{"name": "a", "image": "x:1",
                                      "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}])
    assert guaranteed["status"]["qosClass"] == "Guaranteed"
    assert guaranteed["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    burstable = created(containers=[{"name": "a", "image": "x:1", "resources": {"requests": {"cpu": "100m"}}}])
    assert burstable["status"]["qosClass"] == "Burstable"


def test_valid_pod_has_no_causes() -> None:
    assert PODS.validate(created()) == []


def test_validation_messages() -> None:
    body = created(containers=[
        {"name": "Web", "image": "", "ports": [{"containerPort": 70000}],
         "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
        {"name": "side", "image": "x:1"},
        {"name": "side", "image": "x:1"},
    ], restartPolicy="Sometimes")
    causes = by_field(PODS.validate(body))
    assert causes["spec.containers[0].name"].startswith('Invalid value: "Web": a lowercase RFC 1123 label')
    assert causes["spec.containers[0].image"] == "Required value"
    assert causes["spec.containers[0].ports[0].containerPort"] == \
        "Invalid value: 70000: must be between 1 and 65535, inclusive"
    assert causes["spec.containers[0].resources.requests"] == \
        'Invalid value: "2": must be less than or equal to cpu limit of 1'
    assert causes["spec.containers[2].name"] == 'Duplicate value: "side"'
    assert causes["spec.restartPolicy"] == \
        'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'
    reasons = {c["field"]: c["reason"] for c in PODS.validate(body)}
    assert reasons["spec.containers[0].image"] == "FieldValueRequired"
    assert reasons["spec.containers[2].name"] == "FieldValueDuplicate"
    assert reasons["spec.restartPolicy"] == "FieldValueNotSupported"


def test_containers_required_and_name_format() -> None:
    body = created()
    body["spec"]["containers"] = []
    body["metadata"]["name"] = "Bad_Name"
    causes = by_field(PODS.validate(body))
    assert causes["spec.containers"] == "Required value"
    assert causes["metadata.name"].startswith('Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain')


def test_update_may_change_image_but_not_other_fields() -> None:
    old = created()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.26"
    assert PODS.validate_update(new, old) == []
    new["spec"]["restartPolicy"] = "Never"
    causes = PODS.validate_update(new, old)
    assert [c["field"] for c in causes] == ["spec"]
    assert causes[0]["reason"] == "FieldValueForbidden"
    assert causes[0]["message"].startswith("Forbidden: pod updates may not change fields other than "
                                           "`spec.containers[*].image`")


def test_update_tolerations_only_additions() -> None:
    old = created()
    new = copy.deepcopy(old)
    new["spec"]["tolerations"].append({"key": "x", "operator": "Exists"})
    assert PODS.validate_update(new, old) == []
    new["spec"]["tolerations"] = []
    assert "spec.tolerations" in by_field(PODS.validate_update(new, old))


def test_namespace_is_immutable() -> None:
    old = created()
    new = copy.deepcopy(old)
    new["metadata"]["namespace"] = "other"
    assert by_field(PODS.validate_update(new, old))["metadata.namespace"] == \
        'Invalid value: "other": field is immutable'


def test_status_update_keeps_spec_and_update_keeps_status() -> None:
    old = created()
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Running"}
    new["spec"]["nodeName"] = "n1"
    PODS.prepare_for_status_update(new, old)
    assert new["status"] == {"phase": "Running"} and "nodeName" not in new["spec"]
    other = copy.deepcopy(old)
    other["status"] = {"phase": "Failed"}
    PODS.prepare_for_update(other, old)
    assert other["status"] == old["status"]
    assert PODS.has_status_subresource


def test_selectable_fields() -> None:
    body = created(nodeName="n1")
    body["status"]["podIP"] = "10.0.0.5"
    PODS.default(body)
    fields = PODS.selectable_fields(body)
    assert fields["spec.nodeName"] == "n1"
    assert fields["status.phase"] == "Pending"
    assert fields["status.podIP"] == "10.0.0.5"
    assert fields["spec.hostNetwork"] == "false"
    assert fields["metadata.namespace"] == "default"
    assert body["status"]["podIPs"] == [{"ip": "10.0.0.5"}]


def column_names() -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in PODS.table_columns()]


def test_columns() -> None:
    assert column_names() == [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0), ("IP", 1),
                              ("Node", 1), ("Nominated Node", 1), ("Readiness Gates", 1)]
    assert PODS.table_columns()[0]["format"] == "name"


def running_status(**extra: Any) -> dict[str, Any]:
    status = {"phase": "Running", "podIPs": [{"ip": "10.1.0.4"}],
              "conditions": [{"type": "Ready", "status": "True"}],
              "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0,
                                     "state": {"running": {"startedAt": "2024-01-01T11:56:00Z"}}}]}
    status.update(extra)
    return status


def test_running_pod_row() -> None:
    body = created(nodeName="n1")
    body["status"] = running_status()
    assert PODS.table_row(body, NOW) == ["web", "1/1", "Running", "0", "5m", "10.1.0.4", "n1", "<none>", "<none>"]


def test_crashing_pod_row() -> None:
    body = created()
    body["status"] = running_status(containerStatuses=[{
        "name": "web", "ready": False, "restartCount": 5,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2024-01-01T11:57:00Z"}},
    }])
    row = PODS.table_row(body, NOW)
    assert row[1:4] == ["0/1", "CrashLoopBackOff", "5 (3m ago)"]


def test_terminating_pod_row() -> None:
    body = created()
    body["status"] = running_status()
    body["metadata"]["deletionTimestamp"] = "2024-01-01T11:59:00Z"
    assert PODS.table_row(body, NOW)[2] == "Terminating"


def test_completed_and_error_pods() -> None:
    body = created(restartPolicy="Never")
    body["status"] = {"phase": "Succeeded", "containerStatuses": [
        {"name": "web", "ready": False, "restartCount": 0, "state": {"terminated": {"exitCode": 0,
                                                                                  "reason": "Completed"}}}]}
    assert PODS.table_row(body, NOW)[1:3] == ["0/1", "Completed"]
    body["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 137}}
    assert PODS.table_row(body, NOW)[2] == "ExitCode:137"
    body["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 0, "signal": 9}}
    assert PODS.table_row(body, NOW)[2] == "Signal:9"


def test_init_container_rows() -> None:
    body = created(initContainers=[{"name": "init-a", "image": "busybox:1"}, {"name": "init-b", "image": "busybox:1"}])
    body["status"] = {"phase": "Pending", "initContainerStatuses": [
        {"name": "init-a", "ready": True, "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
        {"name": "init-b", "ready": False, "restartCount": 0, "state": {"running": {}}},
    ], "containerStatuses": [{"name": "web", "ready": False, "restartCount": 0,
                              "state": {"waiting": {"reason": "PodInitializing"}}}]}
    assert PODS.table_row(body, NOW)[1:3] == ["0/1", "Init:1/2"]
    body["status"]["initContainerStatuses"][1]["state"] = {"waiting": {"reason": "ImagePullBackOff"}}
    assert PODS.table_row(body, NOW)[2] == "Init:ImagePullBackOff"
    body["status"]["initContainerStatuses"][1]["state"] = {"terminated": {"exitCode": 2, "reason": "Error"}}
    assert PODS.table_row(body, NOW)[2] == "Init:Error"


def test_sidecar_counts_toward_ready() -> None:
    body = created(initContainers=[{"name": "proxy", "image": "envoy:1", "restartPolicy": "Always"}])
    body["status"] = running_status(initContainerStatuses=[
        {"name": "proxy", "ready": True, "started": True, "restartCount": 0, "state": {"running": {}}}])
    body["status"]["conditions"].append({"type": "Initialized", "status": "True"})
    assert PODS.table_row(body, NOW)[1:3] == ["2/2", "Running"]


def test_pending_pod_without_status_details() -> None:
    body = created()
    assert PODS.table_row(body, NOW) == ["web", "0/1", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"]
