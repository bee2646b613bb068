"""The `aiokube` command: local clusters (up, down, status) and image import."""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_DATA_DIR = os.path.join(os.path.expanduser("~"), ".aiokube")


def _cmd_up(args: argparse.Namespace) -> int:
    from aiokube.cluster.up import UpError, up

    try:
        state = up(args.data_dir, nodes=args.nodes, api_port=args.port, etcd_client_port=args.etcd_port,
                   etcd_peer_port=args.etcd_port + 1, progress=lambda m: print(f"• {m}", flush=True))
    except UpError as e:
        print(f"aiokube up failed: {e}", file=sys.stderr)
        return 1
    print(f"\naiokube is up: API server {state.server}, {len(state.nodes)} node(s).")
    print(f"  export KUBECONFIG={state.kubeconfig}    # admin (system:masters) client certificate")
    print("  kubectl get nodes")
    print("  kubectl create deployment web --image=localhost/busybox:latest -- httpd -f -p 8080")
    print(f"logs: {os.path.join(state.data_dir, 'logs')}   stop: aiokube down --data-dir {state.data_dir}")
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from aiokube.cluster.down import down

    if not down(args.data_dir, purge=args.purge, progress=lambda m: print(f"• {m}", flush=True)):
        print(f"no cluster recorded in {args.data_dir}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    import httpx

    from aiokube.cluster.state import ClusterState
    from aiokube.cluster.up import admin_http

    state = ClusterState.load(os.path.abspath(args.data_dir))
    if state is None:
        print(f"no cluster recorded in {args.data_dir}")
        return 1
    for p in state.processes:
        print(f"{p.name:<24} pid {p.pid:<8} {'running' if p.alive() else 'STOPPED'}")
    try:
        with admin_http(state) as api:  # as the admin of DATA_DIR/kubeconfig, over verified TLS
            response = api.get("/api/v1/nodes")
            response.raise_for_status()
            nodes = response.json().get("items", [])
    except (httpx.HTTPError, OSError) as e:
        print(f"API server {state.server}: unreachable ({e})")
        return 1
    for node in nodes:
        ready = next((c["status"] for c in node.get("status", {}).get("conditions", []) if c["type"] == "Ready"),
                     "Unknown")
        address = next((a["address"] for a in node.get("status", {}).get("addresses", [])
                        if a.get("type") == "InternalIP"), "-")
        print(f"node {node['metadata']['name']:<19} Ready={ready:<8} {address:<16} "
              f"pods {node.get('spec', {}).get('podCIDR', '-')}")
    return 0 if all(p.alive() for p in state.processes) else 1


def _cmd_image_import(args: argparse.Namespace) -> int:
    from aiokube.cluster.state import ClusterState
    from aiokube.node.images import import_image

    state = ClusterState.load(os.path.abspath(args.data_dir))
    if state is None or not state.nodes:
        print(f"no cluster with nodes recorded in {args.data_dir}", file=sys.stderr)
        return 1
    for node in state.nodes:
        base_name = args.base_name or "localhost/" + os.path.basename(args.file).split(".")[0]
        import_image(node.containerd_socket, args.file, base_name=base_name)
        print(f"imported {args.file} into {node.name}")
    return 0


def _cmd_token_create(args: argparse.Namespace) -> int:
    from aiokube.cluster.tokens import create_token_from_kubeconfig, parse_ttl

    try:
        command = create_token_from_kubeconfig(args.kubeconfig, server=args.server, ca_file=args.ca_cert,
                                               ttl=parse_ttl(args.ttl), kubelet_client_ca_file=args.kubelet_client_ca)
    except ValueError as e:
        print(f"aiokube token create: {e}", file=sys.stderr)
        return 1
    print(command)
    return 0


def _cmd_join(args: argparse.Namespace) -> int:
    from aiokube.cluster.join import JoinError, JoinOptions, join

    options = JoinOptions(server=args.server, token=args.token, ca_cert_hash=args.ca_cert_hash,
                          node_name=args.node_name, data_dir=args.data_dir, node_ip=args.node_ip,
                          pod_cidr=args.pod_cidr, start_services=not args.no_start, import_images=not args.no_images,
                          systemd=args.systemd, unit_dir=args.unit_dir, timeout=args.timeout,
                          token_discovery=args.token_discovery)
    try:
        result = join(options, progress=lambda m: print(f"• {m}", flush=True))
    except JoinError as e:
        print(f"aiokube join failed: {e}", file=sys.stderr)
        return 1
    print(f"\nThis machine joined the cluster as node {result.node_name} ({result.node_ip}, pods {result.pod_cidr}).")
    print("  on the control plane: kubectl get nodes")
    return 0


def _cmd_reset(args: argparse.Namespace) -> int:
    from aiokube.cluster.join import stop_services

    count = stop_services(args.data_dir, progress=lambda m: print(f"• {m}", flush=True))
    print(f"stopped {count} node process(es) started from {args.data_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiokube", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="start a local cluster in the background and wait until it is ready")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    p.add_argument("--nodes", type=int, default=None,
                   help="number of nodes (default: 1, or as many as last time on an existing data dir)")
    p.add_argument("--port", type=int, default=6443, help="API server port (default 6443)")
    p.add_argument("--etcd-port", type=int, default=2379, help="etcd client port; the peer port is this + 1")
    p.set_defaults(func=_cmd_up)

    p = sub.add_parser("down", help="stop everything `up` started")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    p.add_argument("--purge", action="store_true", help="also delete the data dir (all cluster state)")
    p.set_defaults(func=_cmd_down)

    p = sub.add_parser("status", help="show components and nodes")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("image", help="manage node images")
    image_sub = p.add_subparsers(dest="image_command", required=True)
    p = image_sub.add_parser("import", help="import an OCI or docker image archive into every node")
    p.add_argument("file")
    p.add_argument("--base-name", default=None,
                   help="name for an archive without one (default: localhost/<file name>)")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    p.set_defaults(func=_cmd_image_import)

    p = sub.add_parser("token", help="bootstrap tokens for joining nodes")
    token_sub = p.add_subparsers(dest="token_command", required=True)
    p = token_sub.add_parser("create", help="create a bootstrap token and print the `aiokube join` command")
    p.add_argument("--ttl", default="24h", help="lifetime, e.g. 24h, 30m; 0 = never expires (default 24h)")
    p.add_argument("--kubeconfig", default=None, help="admin kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--server", default=None, help="address workers reach the API server at, https://HOST:6443 "
                                                  "(default: the kubeconfig's)")
    p.add_argument("--ca-cert", default=None, help="cluster CA file (default: the kubeconfig's CA)")
    p.add_argument("--kubelet-client-ca", default=None,
                   help="the CA joining node agents accept clients of, published as kube-public/"
                        "aiokube-kubelet-client-ca (default: pki/kubelet-client-ca.crt beside the kubeconfig)")
    p.set_defaults(func=_cmd_token_create)

    p = sub.add_parser("join", help="join this machine to a cluster as a node (bootstrap token + CA hash)")
    p.add_argument("--server", required=True, help="https://HOST:6443")
    p.add_argument("--token", required=True, help="bootstrap token <id>.<secret>")
    p.add_argument("--ca-cert-hash", required=True, help="sha256:<hex> of the cluster CA's public key")
    p.add_argument("--node-name", default=os.uname().nodename.lower())
    p.add_argument("--data-dir", default="/var/lib/aiokube")
    p.add_argument("--node-ip", default=None, help="default: the address used to reach the API server")
    p.add_argument("--pod-cidr", default=None, help="default: the /24 the controller-manager allocates to the Node")
    p.add_argument("--systemd", action="store_true", help="write systemd units instead of starting processes")
    p.add_argument("--unit-dir", default="/etc/systemd/system")
    p.add_argument("--no-start", action="store_true", help="only get the credentials; start nothing")
    p.add_argument("--no-images", action="store_true", help="do not import the built-in pause/busybox images")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the certificate")
    p.add_argument("--token-discovery", action="store_true",
                   help="if the server refuses anonymous reads of cluster-info, read it with the token before the "
                        "server is verified (the CA is still pinned by its hash)")
    p.set_defaults(func=_cmd_join)

    p = sub.add_parser("reset", help="stop the node services `aiokube join` started")
    p.add_argument("--data-dir", default="/var/lib/aiokube")
    p.set_defaults(func=_cmd_reset)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
