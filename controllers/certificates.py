"""The CSR controllers of a joining node's bootstrap (Kubernetes' csrapproving and csrsigning controllers).

    csrapproving   approves kubelet client CSRs (signer kubernetes.io/kube-apiserver-client-kubelet) that are
                   well formed and come either from a bootstrap token (group system:bootstrappers: a node
                   joining) or from the node itself renewing (user system:node:<n> asking for CN system:node:<n>).
                   Kubernetes asks a SubjectAccessReview for `certificatesigningrequests/nodeclient` here; this
                   project has no SubjectAccessReview API, so the rule is the group kubeadm binds that to.
                   It also approves a node's serving-certificate CSR (signer kubernetes.io/kubelet-serving) in
                   the one safe case: requested by system:node:<n> itself for CN system:node:<n>, O=system:nodes,
                   usages within digital signature/key encipherment/server auth, and every SAN one of the
                   addresses Node <n> reports (IPs: InternalIP/ExternalIP, DNS: Hostname/InternalDNS/
                   ExternalDNS). Kubernetes and kubeadm approve no kubelet-serving CSR themselves and leave this
                   to an external approver; this is that approver, for requests that cannot claim anything the
                   node does not already own. Until the Node reports the addresses the request stays pending
                   (a Node add/update queues it again).
                   Other requests are left for a human (`kubectl certificate approve`).
    csrsigning     signs approved CSRs of the kubernetes.io signers with the cluster CA given by
                   --cluster-signing-cert-file/--cluster-signing-key-file; a request that breaks its signer's
                   rules gets a Failed condition instead (reason SignerValidationFailure), as in Kubernetes.

Both read the requester from spec.username/groups, which the API server stamps from the authenticated user.
"""

from __future__ import annotations

import base64
import datetime
import logging
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from aiokube.api import certificates as certs
from aiokube.api.errors import ApiError
from aiokube.api.resources import lookup
from aiokube.api.types import Obj
from aiokube.client import Result
from aiokube.cluster import pki

log = logging.getLogger(__name__)

BOOTSTRAPPERS_GROUP = "system:bootstrappers"
# kube-controller-manager's --cluster-signing-duration default.
DEFAULT_SIGNING_DURATION = datetime.timedelta(days=365)
# Backdating as Kubernetes' local signer does, so a node whose clock lags a little accepts its certificate.
BACKDATE = datetime.timedelta(minutes=5)

SIGNERS = frozenset({certs.KUBELET_CLIENT_SIGNER, certs.KUBE_APISERVER_CLIENT_SIGNER, certs.KUBELET_SERVING_SIGNER,
                     certs.LEGACY_UNKNOWN_SIGNER})

_KEY_USAGES = {"digital signature": "digital_signature", "content commitment": "content_commitment",
               "key encipherment": "key_encipherment", "key agreement": "key_agreement",
               "data encipherment": "data_encipherment", "cert sign": "key_cert_sign", "crl sign": "crl_sign",
               "encipher only": "encipher_only", "decipher only": "decipher_only"}
_EXTENDED_USAGES = {"client auth": ExtendedKeyUsageOID.CLIENT_AUTH, "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
                    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
                    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
                    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
                    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING}

Now = Callable[[], datetime.datetime]
CSRS = lookup("certificatesigningrequests")


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _condition(kind: str, reason: str, message: str, now: datetime.datetime) -> Obj:
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": kind, "status": "True", "reason": reason, "message": message, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp}


def _finished(csr: Obj) -> bool:
    status = csr.get("status") or {}
    return bool(status.get("certificate")) or certs.has_condition(csr, certs.FAILED)


# --- approving -------------------------------------------------------------------------------------------------

NodeLookup = Callable[[str], Obj | None]
SERVING_USAGES_REQUIRED = frozenset({"server auth"})
SERVING_USAGES_ALLOWED = frozenset({"digital signature", "key encipherment", "server auth"})
_IP_ADDRESS_TYPES = ("InternalIP", "ExternalIP")
_DNS_ADDRESS_TYPES = ("Hostname", "InternalDNS", "ExternalDNS")


def _no_nodes(_name: str) -> Obj | None:
    return None


def serving_approval_problems(request: x509.CertificateSigningRequest, usages: list[str], username: str,
                              groups: list[str], node: Obj | None) -> list[str]:
    """Why a kubelet-serving CSR is not the safe self-request of a node for its own addresses (empty when it is)."""
    common_name, orgs = certs.subject_of(request)
    if certs.NODES_GROUP not in groups or username != common_name:
        return ["not requested by the node named in the subject"]
    if orgs != [certs.NODES_GROUP] or not common_name.startswith(certs.NODE_USER_PREFIX):
        return [f'subject is not CN=system:node:<name>, O={certs.NODES_GROUP}']
    wanted = set(usages)
    if not SERVING_USAGES_REQUIRED <= wanted or wanted - SERVING_USAGES_ALLOWED:
        return ["usages must be server auth, optionally with digital signature and key encipherment"]
    try:
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ["no subjectAltNames"]
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    dns = set(sans.get_values_for_type(x509.DNSName))
    if not ips and not dns:
        return ["no IP or DNS subjectAltNames"]
    if len(list(sans)) != len(ips) + len(dns):
        return ["only IP and DNS subjectAltNames are allowed"]
    if node is None:
        return [f"node {common_name.removeprefix(certs.NODE_USER_PREFIX)} is not registered"]
    addresses = (node.get("status") or {}).get("addresses") or []
    own_ips = {a.get("address") for a in addresses if a.get("type") in _IP_ADDRESS_TYPES}
    own_dns = {a.get("address") for a in addresses if a.get("type") in _DNS_ADDRESS_TYPES}
    problems = [f"{ip} is not an address of the node" for ip in sorted(ips - own_ips)]
    problems += [f"{name} is not a host name of the node" for name in sorted(dns - own_dns)]
    return problems


def auto_approval_reason(csr: Obj, node_lookup: NodeLookup = _no_nodes) -> str | None:
    """Why this CSR may be approved without a human ("" never), or None when it may not. `node_lookup` gives a
    Node by name (for kubelet-serving requests, whose SANs must be the node's own addresses)."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") == certs.KUBELET_SERVING_SIGNER:
        try:
            request = certs.decode_request(spec.get("request"))
        except certs.CSRFormatError:
            return None
        username = str(spec.get("username") or "")
        node = node_lookup(username.removeprefix(certs.NODE_USER_PREFIX)) \
            if username.startswith(certs.NODE_USER_PREFIX) else None
        if serving_approval_problems(request, list(spec.get("usages") or []), username,
                                     list(spec.get("groups") or []), node):
            return None
        return "Auto approving self kubelet serving certificate for the node's own addresses."
    if spec.get("signerName") != certs.KUBELET_CLIENT_SIGNER:
        return None
    try:
        request = certs.decode_request(spec.get("request"))
    except certs.CSRFormatError:
        return None
    if certs.kubelet_client_problems(request, list(spec.get("usages") or [])):
        return None
    groups = spec.get("groups") or []
    if BOOTSTRAPPERS_GROUP in groups:
        return "Auto approving kubelet client certificate after SubjectAccessReview."
    common_name, _ = certs.subject_of(request)
    if certs.NODES_GROUP in groups and spec.get("username") == common_name:
        return "Auto approving self kubelet client certificate after SubjectAccessReview."
    return None


class _CSRController:
    """What both CSR controllers share: one informer on the cluster-scoped CSRs, each added or updated request
    queued by name."""

    def __init__(self, *, client: Any, informers: Any, now: Now = _utcnow) -> None:
        self.client = client
        self.csrs = informers.get("certificatesigningrequests")
        self.now = now
        self.queue: Any = None

    @property
    def informers(self) -> list[Any]:
        return [self.csrs]

    def watch(self, queue: Any) -> None:
        self.queue = queue
        self.csrs.add_handler(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))

    def _enqueue(self, csr: Obj) -> None:
        self.queue.add(csr["metadata"]["name"])


class CSRApprovingReconciler(_CSRController):
    name = "csrapproving"

    def __init__(self, *, client: Any, informers: Any, now: Now = _utcnow) -> None:
        super().__init__(client=client, informers=informers, now=now)
        self.nodes = informers.get("nodes")

    @property
    def informers(self) -> list[Any]:
        return [self.csrs, self.nodes]

    def watch(self, queue: Any) -> None:
        super().watch(queue)
        # A node's serving CSR waits for the Node to report its addresses: look at its pending CSRs again then.
        self.nodes.add_handler(on_add=self._node_changed, on_update=lambda _old, new: self._node_changed(new))

    def _node_changed(self, node: Obj) -> None:
        user = certs.NODE_USER_PREFIX + node["metadata"]["name"]
        for csr in self.csrs.store.list():
            spec = csr.get("spec") or {}
            if spec.get("signerName") == certs.KUBELET_SERVING_SIGNER and spec.get("username") == user \
                    and not certs.conditions(csr):
                self._enqueue(csr)

    async def reconcile(self, key: str) -> Result:
        csr = self.csrs.store.get(key)
        if csr is None or certs.has_condition(csr, certs.APPROVED) or certs.has_condition(csr, certs.DENIED):
            return Result()
        if _finished(csr):
            return Result()
        message = auto_approval_reason(csr, self.nodes.store.get)
        if message is None:
            return Result()
        body = dict(csr)
        status = dict(body.get("status") or {})
        status["conditions"] = [*certs.conditions(csr), _condition(certs.APPROVED, "AutoApproved", message,
                                                                   self.now())]
        body["status"] = status
        response = await self.client.request("PUT", CSRS.path(None, key, "approval"), json=body)
        if response.status_code in (404, 409):
            return Result()  # gone, or changed meanwhile: the informer brings the new state back here
        if not response.is_success:
            raise ApiError(response.status_code, f"approving {key}: {response.text[:200]}")
        log.info("approved certificate signing request %s for %s", key, (csr.get("spec") or {}).get("username"))
        return Result()


# --- signing ---------------------------------------------------------------------------------------------------

def signer_problems(signer: str, request: x509.CertificateSigningRequest, usages: list[str]) -> list[str]:
    """The signer-specific rules Kubernetes' csrsigning controller enforces before signing."""
    if signer == certs.KUBELET_CLIENT_SIGNER:
        return certs.kubelet_client_problems(request, usages)
    if signer == certs.KUBE_APISERVER_CLIENT_SIGNER and "client auth" not in usages:
        return ['usages must include "client auth"']
    if signer == certs.KUBELET_SERVING_SIGNER and "server auth" not in usages:
        return ['usages must include "server auth"']
    return []


def sign_request(ca: pki.CertKey, request: x509.CertificateSigningRequest, usages: list[str], *,
                 duration: datetime.timedelta, now: datetime.datetime) -> x509.Certificate:
    """A certificate for the request's key and subject (and SANs), valid for `duration` but never past the CA."""
    key_usage = {flag: False for flag in _KEY_USAGES.values()}
    for usage in usages:
        if usage in _KEY_USAGES:
            key_usage[_KEY_USAGES[usage]] = True
    extended = [_EXTENDED_USAGES[u] for u in usages if u in _EXTENDED_USAGES]
    builder = (
        pki.leaf_builder(ca, request.subject, request.public_key(), now=now, validity=duration, backdate=BACKDATE)
        .add_extension(x509.KeyUsage(**key_usage), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    try:
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        builder = builder.add_extension(sans, critical=False)
    except x509.ExtensionNotFound:
        pass
    return builder.sign(ca.key, hashes.SHA256())


class CSRSigningReconciler(_CSRController):
    name = "csrsigning"

    def __init__(self, *, client: Any, informers: Any, ca: pki.CertKey | None,
                 duration: datetime.timedelta = DEFAULT_SIGNING_DURATION, now: Now = _utcnow) -> None:
        super().__init__(client=client, informers=informers, now=now)
        self.ca = ca
        self.duration = duration
        if ca is None:
            log.warning("csrsigning: no --cluster-signing-cert-file/--cluster-signing-key-file; "
                        "approved certificate requests stay unsigned")

    async def reconcile(self, key: str) -> Result:
        csr = self.csrs.store.get(key)
        if self.ca is None or csr is None or _finished(csr):
            return Result()
        if not certs.has_condition(csr, certs.APPROVED) or certs.has_condition(csr, certs.DENIED):
            return Result()
        spec = csr.get("spec") or {}
        signer = str(spec.get("signerName") or "")
        if signer not in SIGNERS:
            return Result()  # another signer's request
        usages = list(spec.get("usages") or [])
        now = self.now()
        body = dict(csr)
        status = dict(body.get("status") or {})
        try:
            request = certs.decode_request(spec.get("request"))
            problems = signer_problems(signer, request, usages)
        except certs.CSRFormatError as exc:
            problems = [str(exc)]
        if problems:
            status["conditions"] = [*certs.conditions(csr),
                                    _condition(certs.FAILED, "SignerValidationFailure", "; ".join(problems), now)]
            log.info("certificate signing request %s fails %s's rules: %s", key, signer, "; ".join(problems))
        else:
            duration = self.duration
            if spec.get("expirationSeconds"):
                duration = min(duration, datetime.timedelta(seconds=int(spec["expirationSeconds"])))
            cert = sign_request(self.ca, request, usages, duration=duration, now=now)
            status["certificate"] = base64.b64encode(pki.CertKey(cert, self.ca.key).cert_pem).decode()
            log.info("signed certificate signing request %s (%s)", key, cert.subject.rfc4514_string())
        body["status"] = status
        try:
            await self.client.update_status("certificatesigningrequests", body)
        except ApiError as err:
            if err.code not in (404, 409):
                raise
        return Result()


# --- controller-manager wiring ---------------------------------------------------------------------------------

def load_signing_ca(cert_file: str | None, key_file: str | None) -> pki.CertKey | None:
    """The CA from --cluster-signing-cert-file/--cluster-signing-key-file, or None when not given."""
    if not cert_file and not key_file:
        return None
    if not cert_file or not key_file:
        raise ValueError("--cluster-signing-cert-file and --cluster-signing-key-file go together")
    with open(cert_file, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(key_file, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_file} is not an ECDSA key")
    return pki.CertKey(cert, key)


def csr_approving_factory(ctx: Any) -> CSRApprovingReconciler:
    return CSRApprovingReconciler(client=ctx.client, informers=ctx.informers)


def csr_signing_factory(ctx: Any) -> CSRSigningReconciler:
    options = ctx.options
    ca = load_signing_ca(getattr(options, "cluster_signing_cert_file", None),
                         getattr(options, "cluster_signing_key_file", None))
    return CSRSigningReconciler(client=ctx.client, informers=ctx.informers, ca=ca)
