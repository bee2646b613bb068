"""Write a control plane's PKI and kubeconfigs: CA, API server serving certificate, and client certificates for
the admin, the controller-manager and the scheduler (deploy/README.md). Idempotent for the CA: an existing
ca.crt/ca.key in OUT/pki is kept, so every control-plane machine of an HA setup can share one CA.

    python deploy/make_control_plane_pki.py --ip 10.0.0.11 [--ip 10.0.0.12 …] [--server https://10.0.0.11:6443] \
        --out /etc/aiokube
"""

from __future__ import annotations

import argparse
import os

import yaml

from aiokube.cluster import pki


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ip", action="append", required=True, help="an address the API server is reached at")
    parser.add_argument("--dns", action="append", default=[], help="a DNS name the API server is reached at")
    parser.add_argument("--server", default=None, help="URL the kubeconfigs use (default https://<first ip>:6443)")
    parser.add_argument("--out", default="/etc/aiokube")
    args = parser.parse_args()
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
    print(f"wrote {pki_dir} and admin/controller-manager/scheduler kubeconfigs in {args.out}")
    print(f"cluster CA hash: {pki.ca_cert_hash(ca.cert)}")


if __name__ == "__main__":
    main()
