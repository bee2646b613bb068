"""CronJobs (batch/v1): defaults, validation (schedule, policies, the job template, a name short enough for the
jobs it creates) and the `kubectl get cronjobs` table."""

from __future__ import annotations

import re
from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import meta
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, containers_column, doc, images_column, print_bool_ptr, since
from apiserver.strategies.jobs import JOB_RESTART_POLICIES
from apiserver.strategies.kind import KindStrategy
from apiserver.strategies.podspec import default_pod_template, validate_pod_template
from apiserver.strategies.workloads import template_containers

CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
# Job names are the cronjob name plus "-" and an 11-digit scheduled time, and must stay valid label values.
MAX_CRONJOB_NAME_LENGTH = 52
_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_FIELD = re.compile(r"^(\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?$")


def schedule_problem(schedule: str) -> str | None:
    """Why a cron schedule is not parseable (robfig/cron standard syntax), or None."""
    text = schedule.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        return "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
    if text.startswith("@"):
        if text in _MACROS or text.startswith("@every "):
            return None
        return f"unrecognized descriptor: {text}"
    fields = text.split()
    if len(fields) != 5:
        return f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]"
    for part in fields:
        if not all(_FIELD.match(item) for item in part.split(",")):
            return f"failed to parse int from {part}"
    return None


class CronJobStrategy(KindStrategy):
    has_status_subresource = True

    columns = [
        Column("Schedule", description=doc("batch.v1.CronJobSpec", "schedule")),
        Column("Timezone", description=doc("batch.v1.CronJobSpec", "timeZone")),
        Column("Suspend", type="boolean", description=doc("batch.v1.CronJobSpec", "suspend")),
        Column("Active", type="integer", description=doc("batch.v1.CronJobStatus", "active")),
        Column("Last Schedule", description=doc("batch.v1.CronJobStatus", "lastScheduleTime")),
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
        containers_column(),
        images_column(),
        Column("Selector", priority=1, description=doc("batch.v1.JobSpec", "selector")),
    ]

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        default_pod_template(((spec.get("jobTemplate") or {}).get("spec") or {}).get("template"))

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def validate_kind(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        name = (obj.get("metadata") or {}).get("name") or ""
        if len(name) > MAX_CRONJOB_NAME_LENGTH:
            causes.append(fe.invalid("metadata.name", name, f"must be no more than {MAX_CRONJOB_NAME_LENGTH} "
                                                            "characters"))
        schedule = spec.get("schedule") or ""
        if not schedule:
            causes.append(fe.required("spec.schedule"))
        else:
            problem = schedule_problem(schedule)
            if problem:
                causes.append(fe.invalid("spec.schedule", schedule, problem))
        policy = spec.get("concurrencyPolicy")
        if policy not in CONCURRENCY_POLICIES:
            causes.append(fe.not_supported("spec.concurrencyPolicy", policy, CONCURRENCY_POLICIES) if policy
                          else fe.required("spec.concurrencyPolicy"))
        for field in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
            causes += fe.non_negative(f"spec.{field}", spec.get(field))
        job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        selector = job_spec.get("selector")
        if selector is not None:
            causes += meta.validate_label_selector(selector, "spec.jobTemplate.spec.selector")
        causes += validate_pod_template(job_spec.get("template"), "spec.jobTemplate.spec.template",
                                        selector=selector, match_selector=selector is not None)
        restart = ((job_spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if restart not in JOB_RESTART_POLICIES:
            causes.append(fe.not_supported("spec.jobTemplate.spec.template.spec.restartPolicy", restart,
                                           JOB_RESTART_POLICIES))
        for field in ("parallelism", "completions", "backoffLimit"):
            causes += fe.non_negative(f"spec.jobTemplate.spec.{field}", job_spec.get(field))
        return causes

    def cells(self, obj: Obj, now: float) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        names, images = template_containers(job_spec.get("template"))
        last = since(status["lastScheduleTime"], now) if status.get("lastScheduleTime") else "<none>"
        return [spec.get("schedule", ""), spec.get("timeZone") or "<none>", print_bool_ptr(spec.get("suspend")),
                len(status.get("active") or []), last, age_cell(obj, now), names, images,
                meta.format_label_selector(job_spec.get("selector"))]
