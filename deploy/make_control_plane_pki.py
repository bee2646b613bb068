"""Write a control plane's PKI and kubeconfigs: CA, API server serving certificate, and client certificates for
the admin, the controller-manager and the scheduler (deploy/README.md); the kubelet-client CA (pki/kubelet-client-ca.*,
whose only certificate is pki/apiserver-kubelet-client.*: what the API server presents to node agents, which accept
no other client) and OUT/kubelet-client-ca.yaml publishing that CA's certificate for joining nodes (`kubectl apply`
it once: ConfigMap kube-public/aiokube-kubelet-client-ca, readable by system:nodes); and this machine's etcd TLS files,
under their own etcd CA as kubeadm does (aiokube/cluster/etcd_pki.py), in OUT/pki/etcd:
    ca.crt ca.key                      the etcd CA
    server.* peer.*                    this machine's etcd member (SANs: --etcd-ip, 127.0.0.1, localhost)
    apiserver-etcd-client.*            kube-apiserver --etcd-cafile ca.crt --etcd-certfile/--etcd-keyfile these
    healthcheck-client.*               for `etcdctl`/status checks
Idempotent for the CAs: an existing ca.* and kubelet-client-ca.* in OUT/pki and ca.* in OUT/pki/etcd are kept, so
every control-plane machine of an HA setup can share them (copy all three before running this on the other
machines).

    python deploy/make_control_plane_pki.py --ip 10.0.0.11 [--ip 10.0.0.12 …] [--server https://10.0.0.11:6443] \
        [--etcd-name cp1] [--etcd-ip 10.0.0.11] --out /etc/aiokube
"""

from __future__ import annotations

import argparse
import os
import socket

import yaml

from aiokube.cluster import etcd_pki, pki
from aiokube.cluster.credentials import KUBELET_CLIENT_USER, kubelet_client_ca_manifests


def kubeconfig(path: str, server: str, ca: pki.CertKey, client: pki.CertKey) -> None:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "aiokube",
              "clusters": [{"name": "aiokube", "cluster": {"server": server,
                                                           "certificate-authority-data": ca.cert_data}}],
              "users": [{"name": "aiokube", "user": {"client-certificate-data": client.cert_data,
                                                     "client-key-data": client.key_data}}],
              "contexts": [{"name": "aiokube", "context": {"cluster": "aiokube", "user": "aiokube"}}]}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)


def write_etcd_pki(pki_dir: str, *, name: str, ip: str) -> str:
    """This machine's etcd member and client files in `pki_dir`/etcd; returns that directory."""
    etcd_dir = os.path.join(pki_dir, "etcd")
    ca = etcd_pki.load_or_create_etcd_ca(etcd_dir)
    etcd_pki.write_member_files(ca, etcd_dir, name=name, ip=ip)
    etcd_pki.write_client_files(ca, etcd_dir)
    etcd_pki.write_client_files(ca, etcd_dir, name=etcd_pki.HEALTHCHECK_CLIENT,
                                common_name=etcd_pki.HEALTHCHECK_CLIENT_CN)
    return etcd_dir


def write_kubelet_client_pki(pki_dir: str, manifest_path: str) -> None:
    """The kubelet-client CA, the API server's certificate from it, and the manifest that publishes the CA."""
    kubelet_ca = pki.load_or_create_ca(pki_dir, "kubelet-client-ca", common_name="aiokube-kubelet-client-ca")
    pki.write_pair(pki.issue_client_cert(kubelet_ca, KUBELET_CLIENT_USER, [pki.MASTERS_GROUP]), pki_dir,
                   "apiserver-kubelet-client")
    with open(manifest_path, "w") as f:
        yaml.safe_dump_all(kubelet_client_ca_manifests(kubelet_ca.cert_pem), f, sort_keys=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ip", action="append", required=True, help="an address the API server is reached at")
    parser.add_argument("--dns", action="append", default=[], help="a DNS name the API server is reached at")
    parser.add_argument("--server", default=None, help="URL the kubeconfigs use (default https://<first ip>:6443)")
    parser.add_argument("--etcd-name", default=socket.gethostname(),
                        help="this machine's etcd member name (ETCD_NAME; default: the host name)")
    parser.add_argument("--etcd-ip", default=None,
                        help="the address this machine's etcd member serves at (NODE_IP; default: the first --ip)")
    parser.add_argument("--out", default="/etc/aiokube")
    args = parser.parse_args(argv)
    pki_dir = os.path.join(args.out, "pki")
    ca = pki.load_or_create_ca(pki_dir)
    serving = pki.issue_serving_cert(ca, "kube-apiserver", ips=[*args.ip, "127.0.0.1"],
                                     dns_names=["kubernetes", "kubernetes.default", "localhost", *args.dns])
    pki.write_pair(serving, pki_dir, "apiserver")
    server = args.server or f"https://{args.ip[0]}:6443"
    kubeconfig(os.path.join(args.out, "admin.conf"), server, ca, pki.issue_admin_cert(ca))
    kubeconfig(os.path.join(args.out, "controller-manager.conf"), "https://127.0.0.1:6443", ca,
               pki.issue_client_cert(ca, pki.CONTROLLER_MANAGER_USER))
    kubeconfig(os.path.join(args.out, "scheduler.conf"), "https://127.0.0.1:6443", ca,
               pki.issue_client_cert(ca, pki.SCHEDULER_USER))
    write_kubelet_client_pki(pki_dir, os.path.join(args.out, "kubelet-client-ca.yaml"))
    etcd_dir = write_etcd_pki(pki_dir, name=args.etcd_name, ip=args.etcd_ip or args.ip[0])
    print(f"wrote {pki_dir} (etcd: {etcd_dir}) and admin/controller-manager/scheduler kubeconfigs in {args.out}")
    print(f"cluster CA hash: {pki.ca_cert_hash(ca.cert)}")
    print(f"`aiokube token create --kubeconfig {args.out}/admin.conf` publishes the kubelet-client CA for joining "
          f"nodes (or: kubectl apply -f {args.out}/kubelet-client-ca.yaml)")


if __name__ == "__main__":
    main()
