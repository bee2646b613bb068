"""CertificateSigningRequests (certificates.k8s.io/v1): who may change what, validation, and the table.

Three ways to write a CSR, each changing only its own part (as Kubernetes' csr strategies do):
    main resource   metadata only; spec is immutable and status is kept
    /approval       the Approved and Denied conditions (what `kubectl certificate approve|deny` PUTs)
    /status         status.certificate (once) and the other conditions (Failed, custom ones) — the signer's part
On create the server records the requester (spec.username, uid, groups, extra) from the authenticated user, so
an approver can trust them; the client's values are discarded.
"""

from __future__ import annotations

import time
from typing import Any

from cryptography import x509

from aiokube.api import certificates as certs
from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies.base import Cause
from apiserver.strategies.columns import Column, age_cell, doc
from apiserver.strategies.kind import KindStrategy
from apiserver.strategies.tableutil import human_duration

APPROVAL_TYPES = (certs.APPROVED, certs.DENIED)
MIN_EXPIRATION_SECONDS = 600  # Kubernetes refuses shorter-lived requests


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _conditions(obj: Obj) -> list[Obj]:
    return list((obj.get("status") or {}).get("conditions") or [])


def _set_conditions(obj: Obj, conditions: list[Obj]) -> None:
    status = obj.setdefault("status", {})
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


class CertificateSigningRequestStrategy(KindStrategy):
    has_status_subresource = True
    tracks_generation = False

    columns = [
        Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp")),
        Column("SignerName", description=doc("certificates.v1.CertificateSigningRequestSpec", "signerName")),
        Column("Requestor", description="Name of user that requested the certificate."),
        Column("RequestedDuration",
               description=doc("certificates.v1.CertificateSigningRequestSpec", "expirationSeconds")),
        Column("Condition", description="Condition of the request."),
    ]

    # --- writes ------------------------------------------------------------------------------------------
    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)
        spec = obj.setdefault("spec", {})
        for field in ("username", "uid", "groups", "extra"):
            spec.pop(field, None)

    def stamp_requester(self, obj: Obj, user: Any) -> None:
        if user is None:
            return
        spec = obj.setdefault("spec", {})
        spec["username"] = user.name
        if user.uid:
            spec["uid"] = user.uid
        if user.groups:
            spec["groups"] = list(user.groups)
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        new["spec"] = old.get("spec", {})
        super().prepare_for_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        # The signer's write: approval conditions stay as stored (only /approval changes them).
        super().prepare_for_status_update(new, old)
        kept = [c for c in _conditions(new) if c.get("type") not in APPROVAL_TYPES]
        approvals = [c for c in _conditions(old) if c.get("type") in APPROVAL_TYPES]
        _set_conditions(new, approvals + kept)
        if not new.get("status"):
            new.pop("status", None)

    def prepare_for_subresource_update(self, subresource: str, new: Obj, old: Obj) -> None:
        if subresource != "approval":
            self.prepare_for_update(new, old)
            return
        # The approver's write: only Approved/Denied conditions come from the request.
        approvals = [c for c in _conditions(new) if c.get("type") in APPROVAL_TYPES]
        status = dict(old.get("status") or {})
        new["spec"] = old.get("spec", {})
        new["status"] = status
        others = [c for c in _conditions(old) if c.get("type") not in APPROVAL_TYPES]
        _set_conditions(new, approvals + others)
        if not new["status"]:
            new.pop("status")

    def default(self, obj: Obj) -> None:
        now = _now()
        for condition in _conditions(obj):
            condition.setdefault("status", "True")
            condition.setdefault("lastUpdateTime", now)
            condition.setdefault("lastTransitionTime", condition["lastUpdateTime"])

    # --- validation --------------------------------------------------------------------------------------
    def validate_kind(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        try:
            certs.decode_request(spec.get("request"))
        except certs.CSRFormatError as exc:
            causes.append(fe.invalid("spec.request", "", str(exc)))
        signer = spec.get("signerName")
        if not signer:
            causes.append(fe.required("spec.signerName", ""))
        elif signer.count("/") < 1 or not signer.split("/", 1)[0] or "." not in signer.split("/", 1)[0]:
            causes.append(fe.invalid("spec.signerName", signer,
                                     "must be a fully qualified domain and path of the form 'example.com/signer-name'"))
        if not spec.get("usages"):
            causes.append(fe.required("spec.usages", ""))
        expiration = spec.get("expirationSeconds")
        if expiration is not None and expiration < MIN_EXPIRATION_SECONDS:
            causes.append(fe.invalid("spec.expirationSeconds", expiration,
                                     f"may not specify a duration less than {MIN_EXPIRATION_SECONDS} seconds"))
        return causes + self._validate_status(obj)

    def _validate_status(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        seen: set[str] = set()
        for i, condition in enumerate(_conditions(obj)):
            kind = condition.get("type") or ""
            if not kind:
                causes.append(fe.required(f"status.conditions[{i}].type", ""))
            elif kind in seen:
                causes.append(fe.duplicate(f"status.conditions[{i}].type", kind))
            seen.add(kind)
            if kind in APPROVAL_TYPES and condition.get("status") != "True":
                causes.append(fe.not_supported(f"status.conditions[{i}].status", condition.get("status"), ["True"]))
        if {certs.APPROVED, certs.DENIED} <= seen:
            causes.append(fe.invalid("status.conditions", certs.APPROVED,
                                     "Approved and Denied conditions are mutually exclusive"))
        certificate = (obj.get("status") or {}).get("certificate")
        if certificate:
            import base64

            try:
                x509.load_pem_x509_certificates(base64.b64decode(certificate))
            except ValueError:
                causes.append(fe.invalid("status.certificate", "<certificate data>",
                                         "must contain at least one CERTIFICATE PEM block"))
        return causes

    def validate_kind_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes: list[Cause] = []
        old_types = {c.get("type") for c in _conditions(old)}
        new_types = {c.get("type") for c in _conditions(new)}
        for kind in APPROVAL_TYPES:
            if kind in old_types and kind not in new_types:
                causes.append(fe.forbidden("status.conditions", f"updates may not remove a condition of type "
                                                                f"{kind!r}"))
        old_cert = (old.get("status") or {}).get("certificate")
        if old_cert and (new.get("status") or {}).get("certificate") != old_cert:
            causes.append(fe.invalid("status.certificate", "<certificate data>", "field is immutable"))
        return causes

    # --- table -------------------------------------------------------------------------------------------
    def cells(self, obj: Obj, now: float) -> list[Any]:
        spec = obj.get("spec") or {}
        expiration = spec.get("expirationSeconds")
        requested = human_duration(float(expiration)) if expiration is not None else "<none>"
        return [age_cell(obj, now), spec.get("signerName", ""), spec.get("username", ""), requested,
                condition_summary(obj)]


def condition_summary(obj: Obj) -> str:
    """kubectl's CONDITION column: Approved/Denied/Failed, then Issued once signed; Pending when none."""
    types = {c.get("type") for c in _conditions(obj)}
    parts = [t for t in (certs.APPROVED, certs.DENIED, certs.FAILED) if t in types]
    if (obj.get("status") or {}).get("certificate"):
        parts.append("Issued")
    return ",".join(parts) or "Pending"
