"""certificates.k8s.io facts shared by the API server's CSR strategy and the CSR controllers: signer names, the
condition types, decoding `spec.request`, and the shape rules of a kubelet client certificate request.

A kubelet client CSR (signer kubernetes.io/kube-apiserver-client-kubelet) must, as in Kubernetes'
`IsKubeletClientCSR`: name `CN=system:node:<name>` with exactly `O=system:nodes`, carry no DNS/IP/email/URI
SANs, and ask for the usages "client auth" and "digital signature" (optionally "key encipherment").
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

GROUP = "certificates.k8s.io"
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
KUBE_APISERVER_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN_SIGNER = "kubernetes.io/legacy-unknown"

APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"

KUBELET_CLIENT_USAGES_REQUIRED = frozenset({"client auth", "digital signature"})
KUBELET_CLIENT_USAGES_ALLOWED = KUBELET_CLIENT_USAGES_REQUIRED | {"key encipherment"}
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"


class CSRFormatError(ValueError):
    """spec.request is not a base64 PEM "CERTIFICATE REQUEST" with a valid self-signature."""


def decode_request(request_b64: Any) -> x509.CertificateSigningRequest:
    """The PKCS#10 request inside `spec.request` (base64 of PEM, as the JSON form of a []byte carries it)."""
    if not isinstance(request_b64, str) or not request_b64:
        raise CSRFormatError("PEM block type must be CERTIFICATE REQUEST")
    try:
        pem = base64.b64decode(request_b64, validate=True)
    except (binascii.Error, ValueError):
        raise CSRFormatError("spec.request must be base64 encoded") from None
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in pem:
        raise CSRFormatError("PEM block type must be CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise CSRFormatError(f"invalid certificate request: {exc}") from None
    if not csr.is_signature_valid:
        raise CSRFormatError("invalid certificate request: the signature does not match the public key")
    return csr


def encode_request(csr: x509.CertificateSigningRequest) -> str:
    from cryptography.hazmat.primitives import serialization

    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


def subject_of(csr: x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    """(common name, organizations) of the request's subject."""
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (str(cns[0].value) if cns else ""), orgs


def _has_sans(csr: x509.CertificateSigningRequest) -> bool:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return len(list(san)) > 0


def kubelet_client_problems(csr: x509.CertificateSigningRequest, usages: list[str]) -> list[str]:
    """Why this is not a valid kubelet client certificate request (empty when it is)."""
    problems = []
    common_name, orgs = subject_of(csr)
    if orgs != [NODES_GROUP]:
        problems.append(f'subject organization is not exactly ["{NODES_GROUP}"]')
    if not common_name.startswith(NODE_USER_PREFIX) or len(common_name) == len(NODE_USER_PREFIX):
        problems.append(f'subject common name does not begin with "{NODE_USER_PREFIX}"')
    if _has_sans(csr):
        problems.append("DNS, email, IP and URI subjectAltNames are not allowed")
    wanted = set(usages)
    if not KUBELET_CLIENT_USAGES_REQUIRED <= wanted:
        problems.append('usages must include "client auth" and "digital signature"')
    extra = wanted - KUBELET_CLIENT_USAGES_ALLOWED
    if extra:
        problems.append(f"usages not allowed: {', '.join(sorted(extra))}")
    return problems


def conditions(csr_obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(((csr_obj.get("status") or {}).get("conditions")) or [])


def has_condition(csr_obj: dict[str, Any], condition_type: str) -> bool:
    return any(c.get("type") == condition_type and c.get("status", "True") == "True"
               for c in conditions(csr_obj))
