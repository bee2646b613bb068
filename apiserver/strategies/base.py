"""The Strategy contract between the generic REST handlers (apiserver/handlers) and per-kind modules.

The handlers own everything generic: uid, creationTimestamp, resourceVersion, generateName, generation bumps
on spec change, finalizers/deletionTimestamp, managedFields, schema validation against the Kubernetes 1.32
JSON schemas, preconditions and storage. A Strategy adds only what is particular to a kind.
"""

from __future__ import annotations

from typing import Any

from aiokube.api.resources import ResourceInfo
from aiokube.api.types import Obj

# metav1.StatusCause: {"field": "spec.replicas", "message": "...", "reason": "FieldValueInvalid"}
Cause = dict[str, str]


class Strategy:
    """Generic rules; subclass per kind and override what differs."""

    # True when the kind has a status subresource: writes to the main resource keep the stored status and
    # writes to /status keep everything but status (and metadata labels/annotations may change on both).
    has_status_subresource: bool = False
    # Whether metadata.generation is bumped on spec changes (kinds with a spec; not for e.g. ConfigMap).
    tracks_generation: bool = True

    def __init__(self, info: ResourceInfo) -> None:
        self.info = info

    # --- writes ------------------------------------------------------------------------------------------
    def default(self, obj: Obj) -> None:
        """Fill in Kubernetes defaults in place (e.g. Pod restartPolicy, Deployment strategy)."""

    def prepare_for_create(self, obj: Obj) -> None:
        """Reset what a client may not set on create (e.g. most of status). Called after metadata.uid is set and
        before a generateName becomes a name (Job derives its selector from the uid)."""

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Carry over what an update of the main resource may not change (status when has_status_subresource)."""
        if self.has_status_subresource and "status" in old:
            new["status"] = old["status"]
        elif self.has_status_subresource:
            new.pop("status", None)

    def prepare_for_subresource_update(self, subresource: str, new: Obj, old: Obj) -> None:
        """A write through another updatable subresource (e.g. a CSR's `approval`); by default the same as an
        update of the main resource."""
        self.prepare_for_update(new, old)

    def stamp_requester(self, obj: Obj, user: Any) -> None:
        """Record who created `obj` (an authenticated `UserInfo`, or None without authentication); kinds like
        CertificateSigningRequest keep the requester in their spec."""

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """A /status write changes only status: everything else comes from the stored object."""
        status = new.get("status")
        new.clear()
        new.update({k: v for k, v in old.items() if k != "status"})
        if status is not None:
            new["status"] = status

    def validate(self, obj: Obj) -> list[Cause]:
        """Kind-specific validation beyond the JSON schema (required fields, formats, selector/labels match)."""
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """Rules about changes (immutable fields …); `validate(new)` is called as well."""
        return []

    # --- reads -------------------------------------------------------------------------------------------
    def selectable_fields(self, obj: Obj) -> dict[str, str]:
        """Fields a fieldSelector may use; metadata.name/namespace always, kinds add theirs."""
        meta = obj.get("metadata", {})
        fields = {"metadata.name": meta.get("name", "")}
        if self.info.namespaced:
            fields["metadata.namespace"] = meta.get("namespace", "")
        return fields

    def table_columns(self) -> list[dict[str, Any]]:
        """metav1.TableColumnDefinition list; the default is NAME and AGE as kubectl shows without a server table."""
        return [
            {"name": "Name", "type": "string", "format": "name", "priority": 0,
             "description": "Name must be unique within a namespace."},
            {"name": "Age", "type": "string", "format": "", "priority": 0,
             "description": "CreationTimestamp is a timestamp representing the server time when this object was "
                            "created."},
        ]

    def table_row(self, obj: Obj, now: float) -> list[Any]:
        """The cells for `obj` in the order of table_columns(); `now` is a unix time for ages."""
        from apiserver.strategies.tableutil import age

        return [obj.get("metadata", {}).get("name", ""), age(obj, now)]
