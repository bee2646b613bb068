"""Jobs (batch/v1): defaults, the generated selector and labels (`batch.kubernetes.io/controller-uid`,
`batch.kubernetes.io/job-name` and their legacy forms), validation, update rules, `status.successful` field
selector and the `kubectl get jobs` table."""

from __future__ import annotations

import uuid
from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import meta
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, containers_column, doc, images_column
from apiserver.strategies.kind import KindStrategy
from apiserver.strategies.podspec import default_pod_template, validate_pod_template
from apiserver.strategies.tableutil import human_duration, parse_time
from apiserver.strategies.workloads import template_containers, validate_selector_unchanged

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
JOB_RESTART_POLICIES = ("OnFailure", "Never")
COMPLETION_MODES = ("NonIndexed", "Indexed")
# backoffLimit when backoffLimitPerIndex is used: effectively unlimited (math.MaxInt32).
MAX_INT32 = 2**31 - 1


def default_job_spec(spec: Obj) -> None:
    """SetDefaults_Job's spec part. (A CronJob's jobTemplate gets only pod-template defaults, as in Kubernetes.)"""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", False)
    spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
        for pattern in rule.get("onPodConditions") or []:
            pattern.setdefault("status", "True")
    default_pod_template(spec.get("template"))


def generate_selector(job: Obj) -> None:
    """What Kubernetes does for a Job without manualSelector: label the template with the job's uid and name and
    select on the uid, so the job's pods are exactly its own."""
    meta_ = job.setdefault("metadata", {})
    spec = job.setdefault("spec", {})
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        if not labels.get(key):  # empty when the name is generated after prepare_for_create: filled in validate
            labels[key] = meta_.get("name", "")
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, meta_["uid"])
    selector = spec.get("selector") or {}
    selector.setdefault("matchLabels", {}).setdefault(CONTROLLER_UID_LABEL, meta_["uid"])
    spec["selector"] = selector


class JobStrategy(KindStrategy):
    has_status_subresource = True

    columns = [
        Column("Status", description="Status of the job."),
        Column("Completions", description=doc("batch.v1.JobStatus", "succeeded")),
        Column("Duration", description="Time required to complete the job."),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
        containers_column(),
        images_column(),
        Column("Selector", priority=1, description=doc("batch.v1.JobSpec", "selector")),
    ]

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        default_job_spec(spec)
        # SetDefaults_Job: a job without labels carries its template's labels.
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        if template_labels and not (obj.get("metadata") or {}).get("labels"):
            obj.setdefault("metadata", {})["labels"] = dict(template_labels)

    def prepare_for_create(self, obj: Obj) -> None:
        """Needs metadata.uid for the generated selector: sets one when the handler has not yet (handlers keep
        an existing uid)."""
        obj["status"] = {}
        if not (obj.get("spec") or {}).get("manualSelector"):
            obj.setdefault("metadata", {}).setdefault("uid", str(uuid.uuid4()))
            generate_selector(obj)
            # Kubernetes applies SetDefaults_Job again when reading the stored job, which copies the generated
            # template labels onto a job that had none; do it now so the first answer already shows them.
            self.default(obj)

    def validate_kind(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        meta_ = obj.get("metadata") or {}
        if not spec.get("manualSelector") and meta_.get("uid") and meta_.get("name"):
            # As Kubernetes does (its Validate generates the selector): by now a generateName has become a name.
            template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            job_labels = meta_.get("labels") or {}
            for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
                if template_labels.get(key) == "" and job_labels.get(key) == "":
                    job_labels[key] = meta_["name"]
            generate_selector(obj)
        causes: list[Cause] = []
        for field in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"):
            causes += fe.non_negative(f"spec.{field}", spec.get(field))
        if spec.get("activeDeadlineSeconds") is not None:
            causes += fe.positive("spec.activeDeadlineSeconds", spec.get("activeDeadlineSeconds"))
        mode = spec.get("completionMode")
        if mode is not None and mode not in COMPLETION_MODES:
            causes.append(fe.not_supported("spec.completionMode", mode, COMPLETION_MODES))
        if mode == "Indexed" and spec.get("completions") is None:
            causes.append(fe.required("spec.completions", "when completion mode is Indexed"))
        selector = spec.get("selector")
        if selector is None:
            causes.append(fe.required("spec.selector"))
        else:
            causes += meta.validate_label_selector(selector, "spec.selector")
            uid = (obj.get("metadata") or {}).get("uid")
            if not spec.get("manualSelector") and uid and \
                    (selector.get("matchLabels") or {}).get(CONTROLLER_UID_LABEL) != uid:
                causes.append(fe.invalid("spec.selector", meta.go_label_selector(selector),
                                         "`selector` not auto-generated"))
        causes += validate_pod_template(spec.get("template"), "spec.template", selector=selector,
                                        match_selector=selector is not None)
        restart = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if restart not in JOB_RESTART_POLICIES:
            causes.append(fe.not_supported("spec.template.spec.restartPolicy", restart, JOB_RESTART_POLICIES))
        return causes

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = validate_selector_unchanged(new, old)
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        for field in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex"):
            if new_spec.get(field) != old_spec.get(field):
                causes.append(fe.immutable(f"spec.{field}", new_spec.get(field)))
        if new_spec.get("completions") != old_spec.get("completions") and new_spec.get("completionMode") != "Indexed":
            causes.append(fe.immutable("spec.completions", new_spec.get("completions")))
        # The pod template is fixed, except the scheduling directives of a job that is suspended and never started.
        if new_spec.get("template") != old_spec.get("template"):
            suspended_unstarted = bool(new_spec.get("suspend")) and not (old.get("status") or {}).get("startTime")
            if not suspended_unstarted or _without_scheduling(new_spec.get("template")) != \
                    _without_scheduling(old_spec.get("template")):
                causes.append(fe.immutable("spec.template", fe.GoLiteral("core.PodTemplateSpec{...}")))
        return causes

    def selectable_fields(self, obj: Obj) -> dict[str, str]:
        fields = super().selectable_fields(obj)
        fields["status.successful"] = str((obj.get("status") or {}).get("succeeded", 0))
        return fields

    def cells(self, obj: Obj, now: float) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        succeeded = status.get("succeeded", 0)
        if spec.get("completions") is not None:
            completions = f"{succeeded}/{spec['completions']}"
        elif (spec.get("parallelism") or 0) > 1:
            completions = f"{succeeded}/1 of {spec['parallelism']}"
        else:
            completions = f"{succeeded}/1"
        duration = ""
        if status.get("startTime"):
            end = parse_time(status["completionTime"]) if status.get("completionTime") else now
            duration = human_duration(end - parse_time(status["startTime"]))
        names, images = template_containers(spec.get("template"))
        return [job_status(obj), completions, duration, age_cell(obj, now), names, images,
                meta.format_label_selector(spec.get("selector"))]


def _without_scheduling(template: Obj | None) -> Obj:
    template = dict(template or {})
    template_meta = dict(template.get("metadata") or {})
    for key in ("labels", "annotations"):
        template_meta.pop(key, None)
    template["metadata"] = template_meta
    spec = dict(template.get("spec") or {})
    for key in ("nodeSelector", "tolerations", "affinity", "schedulingGates"):
        spec.pop(key, None)
    template["spec"] = spec
    return template


def _condition(job: Obj, kind: str) -> bool:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return bool(condition.get("status") == "True")
    return False


def job_status(job: Obj) -> str:
    if _condition(job, "Complete"):
        return "Complete"
    if _condition(job, "Failed"):
        return "Failed"
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    if _condition(job, "Suspended"):
        return "Suspended"
    if _condition(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"
