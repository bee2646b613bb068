"""aiokube.cluster.credentials: the files `aiokube up` writes for a secure local cluster."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509

from aiokube.client import load_kubeconfig
from aiokube.cluster import credentials, pki
from aiokube.cluster.credentials import ClusterCredentials, write_control_plane_credentials, write_node_credentials

SERVER = "https://172.30.0.1:6443"


def load_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def identity(kubeconfig: str) -> tuple[str, list[str]]:
    config = load_kubeconfig(kubeconfig)
    assert config.server == SERVER and config.ca_data is not None and config.client_cert_data is not None
    return pki.identity_of(x509.load_pem_x509_certificate(config.client_cert_data))


def test_serving_certificate_covers_every_address_clients_use(tmp_path: Path) -> None:
    creds = ClusterCredentials(str(tmp_path))
    write_control_plane_credentials(creds, server=SERVER, api_host="172.30.0.1")
    sans = load_cert(creds.apiserver[0]).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"172.30.0.1", "127.0.0.1", "10.96.0.1"}
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", "kubernetes", "kubernetes.default",
                                                           "kubernetes.default.svc",
                                                           "kubernetes.default.svc.cluster.local"}
    assert credentials.kubernetes_service_ip() == "10.96.0.1"
    assert credentials.apiserver_sans("127.0.0.1")[1] == ["127.0.0.1", "10.96.0.1"]  # no duplicate without nodes


def test_each_component_gets_its_own_identity_and_keys_stay_private(tmp_path: Path) -> None:
    creds = ClusterCredentials(str(tmp_path))
    ca = write_control_plane_credentials(creds, server=SERVER, api_host="172.30.0.1")
    write_node_credentials(creds, ca, server=SERVER, node="node-2", node_ip="172.30.0.12")
    assert identity(creds.admin_kubeconfig) == ("kubernetes-admin", ["system:masters"])
    assert identity(creds.controller_manager_kubeconfig) == ("system:kube-controller-manager", [])
    assert identity(creds.scheduler_kubeconfig) == ("system:kube-scheduler", [])
    assert identity(creds.node_kubeconfig("node-2")) == ("system:node:node-2", ["system:nodes"])
    node_serving = load_cert(creds.node_serving("node-2")[0])
    sans = node_serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["172.30.0.12"]
    for leaf in (node_serving, load_cert(creds.apiserver[0])):
        leaf.verify_directly_issued_by(ca.cert)
    # What node agents accept comes from a CA that signs nothing else, so no node credential opens them.
    kubelet_client = load_cert(creds.kubelet_client[0])
    assert pki.identity_of(kubelet_client)[0] == "kube-apiserver-kubelet-client"
    kubelet_client_ca = load_cert(creds.kubelet_client_ca)
    kubelet_client.verify_directly_issued_by(kubelet_client_ca)
    assert kubelet_client_ca.subject != ca.cert.subject
    with pytest.raises(ValueError):
        load_cert(creds.node_serving("node-2")[0]).verify_directly_issued_by(kubelet_client_ca)
    secrets = [creds.ca_key, creds.kubelet_client_ca.replace(".crt", ".key"),
               creds.apiserver[1], creds.kubelet_client[1], creds.node_serving("node-2")[1],
               creds.admin_kubeconfig, creds.controller_manager_kubeconfig, creds.scheduler_kubeconfig,
               creds.node_kubeconfig("node-2")]
    for path in secrets:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_the_ca_is_kept_across_re_ups_and_leaves_are_issued_anew(tmp_path: Path) -> None:
    creds = ClusterCredentials(str(tmp_path))
    first_ca = write_control_plane_credentials(creds, server=SERVER, api_host="172.30.0.1")
    first_serving = load_cert(creds.apiserver[0])
    # A re-up on another bridge address (another cluster took the old subnet meanwhile).
    kubelet_client_ca = load_cert(creds.kubelet_client_ca)
    second_ca = write_control_plane_credentials(creds, server="https://172.30.5.1:6443", api_host="172.30.5.1")
    assert second_ca.cert == first_ca.cert
    assert load_cert(creds.kubelet_client_ca) == kubelet_client_ca
    second_serving = load_cert(creds.apiserver[0])
    assert second_serving.serial_number != first_serving.serial_number
    sans = second_serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "172.30.5.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    second_serving.verify_directly_issued_by(first_ca.cert)
