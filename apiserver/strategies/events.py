"""Events (core/v1): validation, the field selectors `kubectl get events --field-selector` uses, and the
`kubectl get events` table (LAST SEEN, TYPE, REASON, OBJECT, MESSAGE)."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, doc, name_column, since
from apiserver.strategies.kind import KindStrategy

EVENT_TYPES = ("Normal", "Warning")


def event_source(event: Obj) -> str:
    """formatEventSource: component (or reportingController), then host (or reportingInstance)."""
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    host = source.get("host") or event.get("reportingInstance") or ""
    return f"{component}, {host}" if host else component


class EventStrategy(KindStrategy):
    tracks_generation = False

    def validate_kind(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        involved = obj.get("involvedObject") or {}
        namespace = (obj.get("metadata") or {}).get("namespace") or ""
        involved_namespace = involved.get("namespace") or ""
        if involved_namespace and namespace and involved_namespace != namespace:
            causes.append(fe.invalid("involvedObject.namespace", involved_namespace, "does not match event.namespace"))
        kind = obj.get("type")
        if kind and kind not in EVENT_TYPES:
            causes.append(fe.not_supported("type", kind, EVENT_TYPES))
        return causes

    def selectable_fields(self, obj: Obj) -> dict[str, str]:
        fields = super().selectable_fields(obj)
        involved = obj.get("involvedObject") or {}
        for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
            fields[f"involvedObject.{key}"] = str(involved.get(key, ""))
        fields["reason"] = obj.get("reason", "")
        fields["reportingComponent"] = obj.get("reportingComponent", "")
        fields["source"] = (obj.get("source") or {}).get("component", "")
        fields["type"] = obj.get("type", "")
        return fields

    def table_columns(self) -> list[dict[str, Any]]:
        columns = [
            Column("Last Seen", description=doc("core.v1.Event", "lastTimestamp")),
            Column("Type", description=doc("core.v1.Event", "type")),
            Column("Reason", description=doc("core.v1.Event", "reason")),
            Column("Object", description=doc("core.v1.Event", "involvedObject")),
            Column("Subobject", priority=1, description=doc("core.v1.ObjectReference", "fieldPath")),
            Column("Source", priority=1, description=doc("core.v1.Event", "source")),
            Column("Message", description=doc("core.v1.Event", "message")),
            Column("First Seen", priority=1, description=doc("core.v1.Event", "firstTimestamp")),
            Column("Count", priority=1, description=doc("core.v1.Event", "count")),
            Column("Name", priority=1, format="name", description=name_column().description),
        ]
        return [c.definition() for c in columns]

    def table_row(self, obj: Obj, now: float) -> list[Any]:
        first = since(obj.get("firstTimestamp") or obj.get("eventTime"), now)
        last = since(obj["lastTimestamp"], now) if obj.get("lastTimestamp") else first
        count = obj.get("count") or 0
        series = obj.get("series")
        if series:
            last = since(series.get("lastObservedTime"), now)
            count = series.get("count", 0)
        elif not count:
            count = 1  # singleton events of the events.k8s.io API carry no count
        involved = obj.get("involvedObject") or {}
        kind = str(involved.get("kind", "")).lower()
        target = f"{kind}/{involved['name']}" if involved.get("name") else kind
        return [last, obj.get("type", ""), obj.get("reason", ""), target, involved.get("fieldPath", ""),
                event_source(obj), str(obj.get("message", "")).strip(), first, count,
                (obj.get("metadata") or {}).get("name", "")]
