"""The cluster's PKI: one CA, serving certificates for the API server, client certificates for users and
components, the PEM files they live in, and the kubeadm-style CA public-key hash a joining node pins.

Kubernetes reads identity from a client certificate as: Common Name = user name, Organization = groups. So
    admin                          CN=kubernetes-admin,              O=system:masters
    a node                         CN=system:node:<name>,            O=system:nodes
    controller-manager / scheduler CN=system:kube-controller-manager / CN=system:kube-scheduler

Keys are ECDSA P-256: as strong as RSA-3072, generated in a millisecond (RSA-2048 takes ~50 ms), and
accepted by kubectl, Go's crypto/tls and OpenSSL alike.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey

CA_VALIDITY = datetime.timedelta(days=3650)  # kubeadm: 10 years for the CA
CERT_VALIDITY = datetime.timedelta(days=365)  # kubeadm: 1 year for leaf certificates
# Leaf certificates are back-dated a little so a peer whose clock lags ours still accepts them.
CLOCK_SKEW = datetime.timedelta(minutes=5)

MASTERS_GROUP = "system:masters"
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
ADMIN_USER = "kubernetes-admin"


@dataclass(frozen=True)
class CertKey:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @property
    def cert_data(self) -> str:
        """base64 of the PEM, as kubeconfig's `client-certificate-data` / `certificate-authority-data` want."""
        return base64.b64encode(self.cert_pem).decode()

    @property
    def key_data(self) -> str:
        """base64 of the key's PEM (kubeconfig's `client-key-data`)."""
        return base64.b64encode(self.key_pem).decode()


def _new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    # Kubernetes reads every O attribute as a group, so each group is its own attribute.
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def create_ca(common_name: str = "aiokube-ca", *, validity: datetime.timedelta = CA_VALIDITY) -> CertKey:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = _new_key()
    name = _name(common_name)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertKey(cert, key)


def leaf_builder(ca: CertKey, subject: x509.Name, public_key: CertificatePublicKeyTypes, *,
                 now: datetime.datetime, validity: datetime.timedelta,
                 backdate: datetime.timedelta = CLOCK_SKEW) -> x509.CertificateBuilder:
    """A non-CA certificate for `public_key` signed by `ca`: back-dated by `backdate`, valid for `validity` but
    never past the CA's own expiry. Callers add the key usages and SANs."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate)
        .not_valid_after(min(now + validity, ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )


def _issue(ca: CertKey, subject: x509.Name, usages: list[x509.ObjectIdentifier],
           sans: list[x509.GeneralName], validity: datetime.timedelta) -> CertKey:
    key = _new_key()
    builder = (
        leaf_builder(ca, subject, key.public_key(), now=_now(), validity=validity)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                     crl_sign=False, content_commitment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return CertKey(builder.sign(ca.key, hashes.SHA256()), key)


def issue_serving_cert(ca: CertKey, common_name: str, *, dns_names: Sequence[str] = (),
                       ips: Sequence[str] = (), validity: datetime.timedelta = CERT_VALIDITY) -> CertKey:
    """A TLS server certificate valid for the given DNS names and IP addresses (clients check the SANs)."""
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if not sans:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    return _issue(ca, _name(common_name), [ExtendedKeyUsageOID.SERVER_AUTH], sans, validity)


def issue_server_client_cert(ca: CertKey, common_name: str, *, dns_names: Sequence[str] = (),
                             ips: Sequence[str] = (), validity: datetime.timedelta = CERT_VALIDITY) -> CertKey:
    """A certificate both serving TLS and presented as a client, as an etcd member's (it dials its peers with
    the same certificate it serves with, like kubeadm's etcd/server.crt and etcd/peer.crt)."""
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if not sans:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    return _issue(ca, _name(common_name), [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                  sans, validity)


def issue_client_cert(ca: CertKey, user: str, groups: Sequence[str] = (), *,
                      validity: datetime.timedelta = CERT_VALIDITY) -> CertKey:
    """A TLS client certificate naming `user` (CN) in `groups` (one O each)."""
    return _issue(ca, _name(user, groups), [ExtendedKeyUsageOID.CLIENT_AUTH], [], validity)


def issue_node_cert(ca: CertKey, node_name: str) -> CertKey:
    return issue_client_cert(ca, NODE_USER_PREFIX + node_name, [NODES_GROUP])


def issue_admin_cert(ca: CertKey) -> CertKey:
    return issue_client_cert(ca, ADMIN_USER, [MASTERS_GROUP])


def identity_of(cert: x509.Certificate) -> tuple[str, list[str]]:
    """(user, groups) as Kubernetes' x509 authenticator reads them: CN and every O."""
    subject = cert.subject
    cns = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    user = str(cns[0].value) if cns else ""
    groups = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return user, groups


def ca_cert_hash(cert: x509.Certificate) -> str:
    """`sha256:<hex>` of the DER SubjectPublicKeyInfo, the form of `kubeadm join --discovery-token-ca-cert-hash`."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


# --- files ----------------------------------------------------------------------------------------------------

def _write(path: str, data: bytes, mode: int) -> None:
    # Written to a temporary file with its final mode first, so a private key is never readable by others,
    # not even for a moment, and readers never see half a file.
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_pair(pair: CertKey, directory: str, name: str) -> tuple[str, str]:
    """Write `<name>.crt` (0644) and `<name>.key` (0600) into `directory`; returns their paths."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cert_path, key_path = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    _write(key_path, pair.key_pem, 0o600)
    _write(cert_path, pair.cert_pem, 0o644)
    return cert_path, key_path


def load_pair(directory: str, name: str) -> CertKey:
    with open(os.path.join(directory, f"{name}.crt"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(directory, f"{name}.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{name}.key is not an ECDSA key")
    return CertKey(cert, key)


def load_or_create_ca(directory: str, name: str = "ca", *, common_name: str = "aiokube-ca") -> CertKey:
    """The CA in `directory`, created on first use (an existing cluster keeps its CA across restarts)."""
    if os.path.exists(os.path.join(directory, f"{name}.crt")):
        return load_pair(directory, name)
    ca = create_ca(common_name)
    write_pair(ca, directory, name)
    return ca
