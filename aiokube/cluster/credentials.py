"""The credentials of a cluster started by `aiokube up`, under DATA_DIR:

    pki/ca.{crt,key}                       the cluster CA: created once, kept across re-ups (and created on the
                                           first re-up of a data dir from before TLS)
    pki/apiserver.{crt,key}                the API server's serving certificate (SANs: every address it is
                                           reached at, see `apiserver_sans`)
    pki/kubelet-client-ca.{crt,key}        a second CA, whose only client is the API server: node agents accept
                                           clients of this CA alone, so no node (nor any other holder of a
                                           cluster certificate) can exec into pods by calling an agent directly
    pki/apiserver-kubelet-client.{crt,key} what the API server presents to node agents (logs, exec, stats),
                                           signed by kubelet-client-ca
    pki/<node>-serving.{crt,key}           a node agent's serving certificate (SAN: the node's IP and name)
    kubeconfig                             admin: kubernetes-admin in system:masters
    kubeconfigs/controller-manager.conf    system:kube-controller-manager
    kubeconfigs/scheduler.conf             system:kube-scheduler
    kubeconfigs/<node>.conf                system:node:<node> in system:nodes: the node agent, its service
                                           proxy and its DNS server (the default roles system:node and
                                           system:node-proxier grant what the three read and write)

Leaf certificates are issued anew on every `up` (an ECDSA key takes a millisecond): their SANs follow the
current addresses and a long-lived data dir never runs into an expired certificate. The CA persists, so a copy
of an older admin kubeconfig keeps working until its own expiry.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from aiokube.cluster import pki
from aiokube.cluster.kubeconfig import write_kubeconfig

# The API server's default --service-cluster-ip-range; the `kubernetes` Service gets its first address.
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/12"
CLUSTER_DOMAIN = "cluster.local"
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"

# Where a cluster publishes its kubelet-client CA for joining nodes (their agents' --client-ca-file): a
# certificate, public like cluster-info's CA, readable by every node (Role + RoleBinding for system:nodes).
KUBELET_CLIENT_CA_NAMESPACE = "kube-public"
KUBELET_CLIENT_CA_CONFIGMAP = "aiokube-kubelet-client-ca"
KUBELET_CLIENT_CA_KEY = "ca.crt"
NODES_GROUP = "system:nodes"


def kubernetes_service_ip(service_range: str = SERVICE_CLUSTER_IP_RANGE) -> str:
    return str(ipaddress.ip_network(service_range).network_address + 1)


def apiserver_sans(api_host: str) -> tuple[list[str], list[str]]:
    """(DNS names, IPs) a client may use for the API server: its listening address (the node bridge's host
    address, which the `kubernetes` Service's endpoints advertise), loopback, and the `kubernetes` Service by
    ClusterIP and by name (pods reach the API server through it)."""
    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           f"kubernetes.default.svc.{CLUSTER_DOMAIN}"]
    ips = list(dict.fromkeys([api_host, "127.0.0.1", kubernetes_service_ip()]))
    return dns, ips


@dataclass(frozen=True)
class ClusterCredentials:
    """Paths of a local cluster's certificates and kubeconfigs (see the module docstring for the layout)."""

    data_dir: str

    @property
    def pki_dir(self) -> str:
        return os.path.join(self.data_dir, "pki")

    @property
    def kubeconfig_dir(self) -> str:
        return os.path.join(self.data_dir, "kubeconfigs")

    @property
    def ca_cert(self) -> str:
        return os.path.join(self.pki_dir, "ca.crt")

    @property
    def ca_key(self) -> str:
        return os.path.join(self.pki_dir, "ca.key")

    def pair(self, name: str) -> tuple[str, str]:
        """(certificate, key) paths of `name` in the PKI directory."""
        return os.path.join(self.pki_dir, f"{name}.crt"), os.path.join(self.pki_dir, f"{name}.key")

    @property
    def kubelet_client_ca(self) -> str:
        """What node agents take as --client-ca-file."""
        return os.path.join(self.pki_dir, "kubelet-client-ca.crt")

    @property
    def apiserver(self) -> tuple[str, str]:
        return self.pair("apiserver")

    @property
    def kubelet_client(self) -> tuple[str, str]:
        return self.pair("apiserver-kubelet-client")

    def node_serving(self, node: str) -> tuple[str, str]:
        return self.pair(f"{node}-serving")

    @property
    def admin_kubeconfig(self) -> str:
        return os.path.join(self.data_dir, "kubeconfig")

    @property
    def controller_manager_kubeconfig(self) -> str:
        return os.path.join(self.kubeconfig_dir, "controller-manager.conf")

    @property
    def scheduler_kubeconfig(self) -> str:
        return os.path.join(self.kubeconfig_dir, "scheduler.conf")

    def node_kubeconfig(self, node: str) -> str:
        return os.path.join(self.kubeconfig_dir, f"{node}.conf")


def write_control_plane_credentials(creds: ClusterCredentials, *, server: str, api_host: str) -> pki.CertKey:
    """The CA (loaded or created), the API server's certificates and the control plane's kubeconfigs; returns the
    CA for the nodes' credentials."""
    ca = pki.load_or_create_ca(creds.pki_dir)
    dns, ips = apiserver_sans(api_host)
    pki.write_pair(pki.issue_serving_cert(ca, "kube-apiserver", dns_names=dns, ips=ips), creds.pki_dir, "apiserver")
    # Node agents authenticate clients by their CA only (no authorization of their own, unlike the kubelet's
    # webhook mode), so the API server's credential for them comes from a CA that signs nothing else.
    kubelet_ca = pki.load_or_create_ca(creds.pki_dir, "kubelet-client-ca", common_name="aiokube-kubelet-client-ca")
    pki.write_pair(pki.issue_client_cert(kubelet_ca, KUBELET_CLIENT_USER, [pki.MASTERS_GROUP]), creds.pki_dir,
                   "apiserver-kubelet-client")
    os.makedirs(creds.kubeconfig_dir, mode=0o700, exist_ok=True)
    identities = ((creds.admin_kubeconfig, pki.issue_admin_cert(ca), "admin"),
                  (creds.controller_manager_kubeconfig, pki.issue_client_cert(ca, pki.CONTROLLER_MANAGER_USER),
                   pki.CONTROLLER_MANAGER_USER),
                  (creds.scheduler_kubeconfig, pki.issue_client_cert(ca, pki.SCHEDULER_USER), pki.SCHEDULER_USER))
    for path, client, user in identities:
        write_kubeconfig(path, server, ca_pem=ca.cert_pem, client=client, user=user)
    return ca


def write_node_credentials(creds: ClusterCredentials, ca: pki.CertKey, *, server: str, node: str,
                           node_ip: str) -> None:
    """A node's kubeconfig (system:node:<node>) and its agent's serving certificate (SAN = node IP)."""
    pki.write_pair(pki.issue_serving_cert(ca, node, dns_names=[node], ips=[node_ip]), creds.pki_dir,
                   f"{node}-serving")
    write_kubeconfig(creds.node_kubeconfig(node), server, ca_pem=ca.cert_pem, client=pki.issue_node_cert(ca, node),
                     user=pki.NODE_USER_PREFIX + node)


def kubelet_client_ca_manifests(ca_pem: bytes) -> list[dict[str, object]]:
    """ConfigMap kube-public/aiokube-kubelet-client-ca with the kubelet-client CA, and the Role/RoleBinding that
    let nodes read it: what `aiokube join` reads to give its node agent --client-ca-file."""
    name, namespace = KUBELET_CLIENT_CA_CONFIGMAP, KUBELET_CLIENT_CA_NAMESPACE
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
         "data": {KUBELET_CLIENT_CA_KEY: ca_pem.decode()}},
        {"apiVersion": rbac, "kind": "Role", "metadata": {"name": name, "namespace": namespace},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [name], "verbs": ["get"]}]},
        {"apiVersion": rbac, "kind": "RoleBinding", "metadata": {"name": name, "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": NODES_GROUP}]},
    ]
