"""Deployment, ReplicaSet, DaemonSet, StatefulSet, Job and CronJob strategies."""

from __future__ import annotations

import copy
from typing import Any

from tests.unit.strategy_fixtures import NOW, by_field, create, strategy


def template(labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"labels": labels if labels is not None else {"app": "web"}},
                            "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}
    body["spec"].update(spec)
    return body


def workload(kind: str, api_version: str = "apps/v1", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": api_version, "kind": kind,
                            "metadata": {"name": "web", "namespace": "default",
                                         "creationTimestamp": "2024-01-01T11:00:00Z"},
                            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}}
    body["spec"].update(spec)
    return body


# --- Deployment ---------------------------------------------------------------------------------------------

def test_deployment_defaults() -> None:
    body = create("deployments", workload("Deployment"))
    spec = body["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert spec["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert "tolerations" not in spec["template"]["spec"]  # admission additions are for pods only
    assert body["status"] == {}
    assert strategy("deployments").validate(body) == []


def test_deployment_selector_required_and_must_match() -> None:
    body = create("deployments", workload("Deployment"))
    del body["spec"]["selector"]
    causes = strategy("deployments").validate(body)
    assert causes[0] == {"field": "spec.selector", "message": "Required value", "reason": "FieldValueRequired"}
    body["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    assert by_field(strategy("deployments").validate(body))["spec.template.metadata.labels"] == \
        'Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`'


def test_deployment_invalid_values() -> None:
    body = create("deployments", workload("Deployment", replicas=-1))
    body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    body["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}
    causes = by_field(strategy("deployments").validate(body))
    assert causes["spec.replicas"] == "Invalid value: -1: must be greater than or equal to 0"
    assert causes["spec.template.spec.restartPolicy"] == 'Unsupported value: "Never": supported values: "Always"'
    assert causes["spec.strategy.rollingUpdate.maxUnavailable"] == "Invalid value: 0: may not be 0 when `maxSurge` is 0"


def test_deployment_selector_is_immutable() -> None:
    old = create("deployments", workload("Deployment"))
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    causes = strategy("deployments").validate_update(new, old)
    assert causes == [{"field": "spec.selector", "reason": "FieldValueInvalid", "message":
                       'Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "tier":"x"}, '
                       "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"}]


def test_deployment_table() -> None:
    s = strategy("deployments")
    body = create("deployments", workload("Deployment", replicas=3))
    body["status"] = {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    assert [(c["name"], c["priority"]) for c in s.table_columns()] == [
        ("Name", 0), ("Ready", 0), ("Up-to-date", 0), ("Available", 0), ("Age", 0), ("Containers", 1),
        ("Images", 1), ("Selector", 1)]
    assert s.table_row(body, NOW) == ["web", "2/3", 3, 2, "60m", "web", "nginx:1.25", "app=web"]


# --- ReplicaSet ---------------------------------------------------------------------------------------------

def test_replicaset_rules_and_table() -> None:
    s = strategy("replicasets")
    body = create("replicasets", workload("ReplicaSet"))
    assert body["spec"]["replicas"] == 1 and body["status"] == {"replicas": 0}
    assert s.validate(body) == []
    body["status"] = {"replicas": 1, "readyReplicas": 1}
    assert s.table_row(body, NOW) == ["web", 1, 1, 1, "60m", "web", "nginx:1.25", "app=web"]
    assert s.selectable_fields(body)["status.replicas"] == "1"
    body["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 5
    assert by_field(s.validate(body))["spec.template.spec.activeDeadlineSeconds"] == \
        "Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"


# --- DaemonSet ----------------------------------------------------------------------------------------------

def test_daemonset_defaults_validation_table() -> None:
    s = strategy("daemonsets")
    body = create("daemonsets", workload("DaemonSet"))
    assert body["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert body["spec"]["revisionHistoryLimit"] == 10
    assert s.validate(body) == []
    body["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    body["status"] = {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                      "updatedNumberScheduled": 2, "numberAvailable": 1}
    assert s.table_row(body, NOW) == ["web", 2, 2, 1, 2, 1, "disk=ssd", "60m", "web", "nginx:1.25", "app=web"]
    body["spec"]["selector"] = {}
    assert by_field(s.validate(body))["spec.selector"].endswith("empty selector is not valid for daemonset.")


# --- StatefulSet --------------------------------------------------------------------------------------------

def test_statefulset_defaults_and_update_rules() -> None:
    s = strategy("statefulsets")
    body = create("statefulsets", workload("StatefulSet", serviceName="web"))
    spec = body["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert s.validate(body) == []
    new = copy.deepcopy(body)
    new["spec"]["replicas"] = 5
    assert s.validate_update(new, body) == []
    new["spec"]["serviceName"] = "other"
    assert [c["field"] for c in s.validate_update(new, body)] == ["spec"]
    body["status"] = {"readyReplicas": 1}
    assert s.table_row(body, NOW) == ["web", "1/1", "60m", "web", "nginx:1.25"]


# --- Job ----------------------------------------------------------------------------------------------------

def job(**spec: Any) -> dict[str, Any]:
    body = workload("Job", "batch/v1", **spec)
    del body["spec"]["selector"]
    body["spec"]["template"] = template(labels={}, restartPolicy="Never")
    body["metadata"]["uid"] = "1234-uid"
    return body


def test_job_defaults_and_generated_selector() -> None:
    s = strategy("jobs")
    body = create("jobs", job())
    spec = body["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed" and spec["suspend"] is False and spec["manualSelector"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "1234-uid"}}
    expected_labels = {"batch.kubernetes.io/controller-uid": "1234-uid", "batch.kubernetes.io/job-name": "web",
                       "controller-uid": "1234-uid", "job-name": "web"}
    assert spec["template"]["metadata"]["labels"] == expected_labels
    assert body["metadata"]["labels"] == expected_labels
    assert s.validate(body) == []


def test_job_sets_uid_when_missing() -> None:
    body = job()
    del body["metadata"]["uid"]
    create("jobs", body)
    uid = body["metadata"]["uid"]
    assert body["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] == uid


def test_job_generated_name_fills_job_name_labels_in_validate() -> None:
    body = job()
    body["metadata"] = {"generateName": "web-", "namespace": "default", "uid": "1234-uid"}
    create("jobs", body)  # the create handler generates the name after prepare_for_create
    body["metadata"]["name"] = "web-x7k2p"
    assert strategy("jobs").validate(body) == []
    assert body["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "web-x7k2p"
    assert body["metadata"]["labels"]["job-name"] == "web-x7k2p"


def test_job_parallelism_only_keeps_completions_unset() -> None:
    body = create("jobs", job(parallelism=3))
    assert "completions" not in body["spec"]
    body["status"] = {"succeeded": 1}
    assert strategy("jobs").table_row(body, NOW)[2] == "1/1 of 3"


def test_job_restart_policy_and_template_immutable() -> None:
    s = strategy("jobs")
    body = create("jobs", job())
    bad = copy.deepcopy(body)
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert by_field(s.validate(bad))["spec.template.spec.restartPolicy"] == \
        'Unsupported value: "Always": supported values: "OnFailure", "Never"'
    new = copy.deepcopy(body)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert [c["field"] for c in s.validate_update(new, body)] == ["spec.template"]


def test_job_table() -> None:
    s = strategy("jobs")
    body = create("jobs", job())
    body["status"] = {"succeeded": 1, "startTime": "2024-01-01T11:00:00Z", "completionTime": "2024-01-01T11:00:07Z",
                      "conditions": [{"type": "Complete", "status": "True"}]}
    assert [c["name"] for c in s.table_columns()] == ["Name", "Status", "Completions", "Duration", "Age",
                                                      "Containers", "Images", "Selector"]
    assert s.table_row(body, NOW) == ["web", "Complete", "1/1", "7s", "60m", "web", "nginx:1.25",
                                      "batch.kubernetes.io/controller-uid=1234-uid"]
    assert s.selectable_fields(body)["status.successful"] == "1"
    body["status"] = {"startTime": "2024-01-01T11:59:00Z"}
    assert s.table_row(body, NOW)[1:4] == ["Running", "0/1", "60s"]


# --- CronJob ------------------------------------------------------------------------------------------------

def cronjob(schedule: str = "*/5 * * * *") -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "creationTimestamp": "2024-01-01T11:00:00Z"},
            "spec": {"schedule": schedule,
                     "jobTemplate": {"spec": {"template": template(labels={}, restartPolicy="OnFailure")}}}}


def test_cronjob_defaults_validation_table() -> None:
    s = strategy("cronjobs")
    body = create("cronjobs", cronjob())
    spec = body["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    assert s.validate(body) == []
    assert s.table_row(body, NOW) == ["tick", "*/5 * * * *", "<none>", "False", 0, "<none>", "60m", "web",
                                      "nginx:1.25", "<none>"]
    bad = create("cronjobs", cronjob("every minute"))
    assert "spec.schedule" in by_field(s.validate(bad))
    bad["metadata"]["name"] = "x" * 53
    assert by_field(s.validate(bad))["metadata.name"].endswith("must be no more than 52 characters")
