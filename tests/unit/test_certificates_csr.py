"""CertificateSigningRequests: the strategy's write rules, the approver's rule, the signer's certificate, and the
bootstrap token / cluster-info objects `aiokube token create` writes."""

from __future__ import annotations

import base64
import datetime

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aiokube.api import certificates as certs
from aiokube.api.resources import lookup
from aiokube.cluster import pki, tokens
from aiokube.cluster.join import (
    KUBELET_SERVING_USAGES,
    csr_object,
    node_addresses,
    node_csr,
    serving_csr,
    serving_csr_object,
)
from apiserver.auth.authn import bootstrap_user
from apiserver.auth.user import UserInfo
from apiserver.strategies.certificates import condition_summary
from apiserver.strategies.registry import strategy_for
from controllers.certificates import CSRApprovingReconciler, auto_approval_reason, sign_request, signer_problems
from controllers.testing import FakeInformers, FakeQueue

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
STRATEGY = strategy_for(lookup("certificatesigningrequests"))


def node_request(name: str = "w1") -> dict:
    _, request = node_csr(name)
    return csr_object(name, request)


def test_resource_is_registered_with_status_and_approval() -> None:
    info = lookup("csr")
    assert (info.group, info.kind, info.namespaced) == ("certificates.k8s.io", "CertificateSigningRequest", False)
    assert set(info.subresources) == {"status", "approval"}


def test_create_records_the_authenticated_requester_not_the_clients_claim() -> None:
    obj = node_request()
    obj["spec"]["groups"] = ["system:masters"]
    obj["status"] = {"certificate": "Zm9v"}
    STRATEGY.prepare_for_create(obj)
    STRATEGY.stamp_requester(obj, UserInfo("system:bootstrap:abcdef", groups=("system:bootstrappers",)))
    assert obj["spec"]["username"] == "system:bootstrap:abcdef"
    assert obj["spec"]["groups"] == ["system:bootstrappers"] and "status" not in obj
    assert STRATEGY.validate(obj | {"metadata": {"name": "x"}}) == []


def test_validation_refuses_garbage_requests_and_short_expirations() -> None:
    obj = node_request() | {"metadata": {"name": "x"}}
    obj["spec"]["request"] = base64.b64encode(b"not pem").decode()
    obj["spec"]["expirationSeconds"] = 60
    fields = {c["field"] for c in STRATEGY.validate(obj)}
    assert {"spec.request", "spec.expirationSeconds"} <= fields


def test_approval_changes_only_approval_conditions_and_status_keeps_them() -> None:
    old = node_request() | {"metadata": {"name": "x"}}
    new = {**old, "spec": {**old["spec"], "signerName": "example.com/other"},
           "status": {"certificate": "Zm9v", "conditions": [{"type": "Approved", "status": "True"}]}}
    STRATEGY.prepare_for_subresource_update("approval", new, old)
    assert new["spec"] == old["spec"] and "certificate" not in new["status"]
    assert [c["type"] for c in new["status"]["conditions"]] == ["Approved"]
    # A /status write may not remove the approval.
    signer_write = {**new, "status": {"certificate": "Zm9v", "conditions": []}}
    STRATEGY.prepare_for_status_update(signer_write, new)
    assert [c["type"] for c in signer_write["status"]["conditions"]] == ["Approved"]
    assert condition_summary(signer_write) == "Approved,Issued" and condition_summary(old) == "Pending"


def test_approving_and_denying_together_is_invalid() -> None:
    obj = node_request() | {"metadata": {"name": "x"}}
    obj["status"] = {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]}
    assert any("mutually exclusive" in c["message"] for c in STRATEGY.validate(obj))


def test_auto_approval_for_bootstrappers_and_self_renewal_only() -> None:
    obj = node_request("w1")
    obj["spec"] |= {"username": "system:bootstrap:abcdef", "groups": ["system:bootstrappers"]}
    assert auto_approval_reason(obj)
    obj["spec"] |= {"username": "system:node:w1", "groups": ["system:nodes"]}
    assert auto_approval_reason(obj)
    obj["spec"] |= {"username": "system:node:w2", "groups": ["system:nodes"]}  # another node's name
    assert auto_approval_reason(obj) is None
    obj["spec"] |= {"username": "alice", "groups": ["developers"]}
    assert auto_approval_reason(obj) is None


def test_kubelet_client_shape_is_enforced() -> None:
    key = pki.create_ca().key
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "system:node:w1")])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    problems = signer_problems(certs.KUBELET_CLIENT_SIGNER, request, ["client auth", "digital signature"])
    assert problems and "organization" in problems[0]
    obj = csr_object("w1", request)
    obj["spec"] |= {"username": "system:bootstrap:abcdef", "groups": ["system:bootstrappers"]}
    assert auto_approval_reason(obj) is None


def test_signed_certificate_carries_the_request_identity_and_usages() -> None:
    ca = pki.create_ca()
    key, request = node_csr("w1")
    cert = sign_request(ca, request, ["digital signature", "client auth"], duration=datetime.timedelta(hours=1),
                        now=NOW)
    assert pki.identity_of(cert) == ("system:node:w1", ["system:nodes"])
    assert cert.public_key() == key.public_key() and cert.issuer == ca.cert.subject
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(hours=1, minutes=5)


def test_token_secret_authenticates_as_a_bootstrapper_until_it_expires() -> None:
    token = tokens.BootstrapToken.generate()
    assert tokens.BootstrapToken.parse(str(token)) == token
    secret = tokens.token_secret(token, ttl=datetime.timedelta(hours=1), now=NOW)
    user = bootstrap_user(secret, token.token_id, token.secret, NOW)
    assert user is not None and user.name == f"system:bootstrap:{token.token_id}"
    assert "system:bootstrappers" in user.groups and tokens.NODE_TOKEN_GROUP in user.groups
    assert bootstrap_user(secret, token.token_id, token.secret, NOW + datetime.timedelta(hours=2)) is None
    assert tokens.parse_ttl("1h30m") == datetime.timedelta(minutes=90) and tokens.parse_ttl("0") is None


def test_cluster_info_round_trips_and_the_join_command_pins_the_ca() -> None:
    ca = pki.create_ca()
    configmap = tokens.cluster_info_configmap("https://10.0.0.1:6443", ca.cert_pem)
    assert tokens.ca_from_cluster_info(configmap) == ("https://10.0.0.1:6443", ca.cert_pem)
    assert yaml.safe_load(configmap["data"]["kubeconfig"])["kind"] == "Config"
    token = tokens.BootstrapToken("abcdef", "0123456789abcdef")
    assert tokens.join_command("https://10.0.0.1:6443", token, ca.cert_pem) == (
        f"aiokube join --server https://10.0.0.1:6443 --token abcdef.0123456789abcdef "
        f"--ca-cert-hash {pki.ca_cert_hash(ca.cert)}")


# --- the node agent's serving certificate ----------------------------------------------------------------------

def serving_request(name: str = "w1", ip: str = "10.0.0.12", *, username: str | None = None) -> dict:
    _, request = serving_csr(name, ip)
    obj = serving_csr_object(name, request)
    obj["spec"] |= {"username": username or f"system:node:{name}", "groups": ["system:nodes", "system:authenticated"]}
    return obj


def registered(name: str = "w1", ip: str = "10.0.0.12") -> dict:
    return {"metadata": {"name": name}, "status": {"addresses": node_addresses(name, ip)}}


def test_serving_csr_is_approved_only_for_the_requesting_nodes_own_addresses() -> None:
    nodes = {"w1": registered("w1"), "w2": registered("w2", "10.0.0.13")}
    assert auto_approval_reason(serving_request("w1"), nodes.get)
    # Not yet registered (or no addresses reported): pending, not approved.
    assert auto_approval_reason(serving_request("w1")) is None
    assert auto_approval_reason(serving_request("w1"), {"w1": {"metadata": {"name": "w1"}}}.get) is None
    # Another node's address, asked for by w1 as itself: no.
    assert auto_approval_reason(serving_request("w1", "10.0.0.13"), nodes.get) is None
    # w2 asking for a certificate naming w1: no.
    assert auto_approval_reason(serving_request("w1", username="system:node:w2"), nodes.get) is None
    # A bootstrap token or a user may not get one either.
    for username, groups in (("system:bootstrap:abcdef", ["system:bootstrappers"]), ("alice", ["developers"])):
        obj = serving_request("w1")
        obj["spec"] |= {"username": username, "groups": groups}
        assert auto_approval_reason(obj, nodes.get) is None


def test_serving_csr_with_client_usage_or_without_sans_is_not_auto_approved() -> None:
    nodes = {"w1": registered("w1")}
    obj = serving_request("w1")
    obj["spec"]["usages"] = [*obj["spec"]["usages"], "client auth"]
    assert auto_approval_reason(obj, nodes.get) is None
    key, _ = serving_csr("w1", "10.0.0.12")
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "system:node:w1")])
    no_sans = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    obj = serving_csr_object("w1", no_sans)
    obj["spec"] |= {"username": "system:node:w1", "groups": ["system:nodes"]}
    assert auto_approval_reason(obj, nodes.get) is None


def test_signed_serving_certificate_carries_the_node_addresses_for_server_auth() -> None:
    ca = pki.create_ca()
    key, request = serving_csr("w1", "10.0.0.12")
    assert signer_problems(certs.KUBELET_SERVING_SIGNER, request, KUBELET_SERVING_USAGES) == []
    cert = sign_request(ca, request, KUBELET_SERVING_USAGES, duration=datetime.timedelta(hours=1), now=NOW)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.12"]
    assert sans.get_values_for_type(x509.DNSName) == ["w1"]
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    assert cert.public_key() == key.public_key()


class RecordingClient:
    """Answers the approver's PUT …/approval with 200 and remembers it."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict]] = []

    async def request(self, method: str, path: str, json: dict) -> httpx.Response:
        self.requests.append((method, path, json))
        return httpx.Response(200, json=json)


async def test_approver_waits_for_the_node_to_report_its_addresses_then_approves() -> None:
    informers = FakeInformers()
    client = RecordingClient()
    approver = CSRApprovingReconciler(client=client, informers=informers, now=lambda: NOW)
    queue = FakeQueue()
    approver.watch(queue)
    csr = serving_request("w1") | {"metadata": {"name": "node-serving-1", "resourceVersion": "1"}}
    informers.get("certificatesigningrequests").apply([csr])
    assert queue.added == ["node-serving-1"]
    await approver.reconcile("node-serving-1")
    assert client.requests == []  # Node w1 is not registered: pending
    # The Node appears with its addresses: its pending serving CSR is looked at again, and approved.
    node = registered("w1") | {"metadata": {"name": "w1", "resourceVersion": "2"}}
    informers.get("nodes").apply([node])
    assert queue.added == ["node-serving-1", "node-serving-1"]
    await approver.reconcile("node-serving-1")
    [(method, path, body)] = client.requests
    assert (method, path) == ("PUT", "/apis/certificates.k8s.io/v1/certificatesigningrequests/node-serving-1/approval")
    assert [c["type"] for c in body["status"]["conditions"]] == ["Approved"]
