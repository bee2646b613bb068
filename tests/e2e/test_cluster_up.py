"""The thin end-to-end path: `aiokube up`, then `kubectl apply` of a Deployment ends in running containers on
containerd; `aiokube down` leaves no process behind.

Also the cluster's security as `up` sets it up (issue 7): HTTPS with a CA-verified serving certificate, 401
without a client certificate, one identity per component, node agents serving TLS that only the API server's
client certificate opens (so `kubectl exec` works over verified TLS), and a data dir from before TLS (no
pki/) brought back up with a fresh PKI."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
from cryptography import x509

from aiokube.client import load_kubeconfig
from aiokube.cluster import pki
from aiokube.cluster.credentials import ClusterCredentials
from aiokube.cluster.state import ClusterState
from tests.support.etcd import free_port
from tests.support.kubectl import run_kubectl

pytestmark = [pytest.mark.containerd, pytest.mark.kubectl]

DEPLOYMENT = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
    spec:
      replicas: 2
      selector:
        matchLabels: {app: web}
      template:
        metadata:
          labels: {app: web}
        spec:
          containers:
          - name: httpd
            image: localhost/busybox:latest
            imagePullPolicy: Never
            command: ["httpd", "-f", "-p", "8080"]
""")


def aiokube(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aiokube.cli", *args], capture_output=True, text=True, timeout=300)


UP_OUTPUT: dict[str, str] = {}  # what `aiokube up` printed, for the test of its closing lines


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    data_dir = str(tmp_path_factory.mktemp("cluster"))
    result = aiokube("up", "--data-dir", data_dir, "--nodes", "1", "--port", str(free_port()),
                     "--etcd-port", str(free_port()))
    UP_OUTPUT["stdout"] = result.stdout
    state = ClusterState.load(data_dir)
    try:
        assert result.returncode == 0, f"aiokube up failed:\n{result.stdout}\n{result.stderr}"
        assert state is not None
        yield state
    finally:
        down = aiokube("down", "--data-dir", data_dir)
        assert down.returncode == 0, down.stderr
        if state is not None:
            assert not [p.name for p in state.processes if p.alive()], "processes left after down"


def kubectl(state: ClusterState, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_kubectl(["kubectl", *args], kubeconfig=state.kubeconfig, home=state.data_dir, stdin=stdin)


def test_up_shows_progress_and_prints_what_to_type_next(cluster: ClusterState) -> None:
    lines = UP_OUTPUT["stdout"].splitlines()
    assert "• 1/1 node(s) Ready" in lines, lines
    assert f"  export KUBECONFIG={cluster.kubeconfig}    # admin (system:masters) client certificate" in lines
    assert "  kubectl get nodes" in lines
    # The printed commands work as printed.
    nodes = run_kubectl(["kubectl", "get", "nodes"], kubeconfig=cluster.kubeconfig, home=cluster.data_dir)
    assert nodes.returncode == 0 and "node-1" in nodes.stdout and " Ready " in nodes.stdout, nodes.stdout


def test_apply_deployment_runs_containers(cluster: ClusterState) -> None:
    applied = kubectl(cluster, "apply", "-f", "-", stdin=DEPLOYMENT)
    assert applied.returncode == 0, applied.stderr
    assert "deployment.apps/web created" in applied.stdout

    deadline = time.monotonic() + 90
    running: list[dict] = []
    while time.monotonic() < deadline:
        out = kubectl(cluster, "get", "pods", "-l", "app=web", "-o", "json")
        assert out.returncode == 0, out.stderr
        pods = json.loads(out.stdout)["items"]
        running = [p for p in pods if p.get("status", {}).get("phase") == "Running"
                   and all(c.get("ready") for c in p["status"].get("containerStatuses", []))]
        if len(running) == 2:
            break
        time.sleep(0.5)
    assert len(running) == 2, f"pods not running: {kubectl(cluster, 'get', 'pods', '-o', 'wide').stdout}"
    for pod in running:
        assert pod["spec"]["nodeName"] == "node-1"
        assert pod["status"].get("podIP"), pod["status"]
        status = pod["status"]["containerStatuses"][0]
        assert status["containerID"].startswith("containerd://")
        assert "running" in status["state"]
        # busybox httpd in the pod's own network namespace answers on the pod IP (404: no files to serve).
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/", timeout=5)
        assert answer.value.code == 404

    table = kubectl(cluster, "get", "deployment", "web")
    assert table.returncode == 0, table.stderr
    assert "2/2" in table.stdout, table.stdout


def ca_context(state: ClusterState) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ClusterCredentials(state.data_dir).ca_cert)


def kubeconfig_identity(path: str) -> tuple[str, list[str]]:
    config = load_kubeconfig(path)
    assert config.client_cert_data is not None, f"{path} has no client certificate"
    return pki.identity_of(x509.load_pem_x509_certificate(config.client_cert_data))


def test_api_server_is_https_and_refuses_requests_without_credentials(cluster: ClusterState) -> None:
    assert cluster.server.startswith("https://")
    with httpx.Client(base_url=cluster.server, verify=ca_context(cluster), timeout=10) as anonymous:
        # The serving certificate verifies against the cluster CA for the address kubectl uses.
        assert anonymous.get("/version").status_code == 200  # public, as in Kubernetes
        for path in ("/api/v1/namespaces", "/api/v1/nodes", "/apis/apps/v1/deployments"):
            answer = anonymous.get(path)
            assert answer.status_code == 401, (path, answer.text)
            assert answer.json()["reason"] == "Unauthorized"
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the HTTPS port gets nowhere
        httpx.get(cluster.server.replace("https://", "http://") + "/version", timeout=5)


def test_every_component_has_its_own_identity(cluster: ClusterState) -> None:
    creds = ClusterCredentials(cluster.data_dir)
    assert kubeconfig_identity(cluster.kubeconfig) == ("kubernetes-admin", ["system:masters"])
    assert kubeconfig_identity(creds.controller_manager_kubeconfig) == ("system:kube-controller-manager", [])
    assert kubeconfig_identity(creds.scheduler_kubeconfig) == ("system:kube-scheduler", [])
    assert kubeconfig_identity(creds.node_kubeconfig("node-1")) == ("system:node:node-1", ["system:nodes"])
    argv = {p.name: p.argv for p in cluster.processes}
    assert creds.controller_manager_kubeconfig in argv["controllers"]
    assert creds.scheduler_kubeconfig in argv["scheduler"]
    for component in ("kubelet-node-1", "proxy-node-1", "clusterdns-node-1"):
        assert creds.node_kubeconfig("node-1") in argv[component], component
    # Only the admin is cluster-admin: the scheduler's credential may not grant itself anything.
    scheduler = load_kubeconfig(creds.scheduler_kubeconfig)
    with httpx.Client(base_url=scheduler.server, verify=scheduler.ssl_context(), timeout=10) as api:
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": "escalate"}, "subjects": [{"kind": "User", "name": "system:kube-scheduler"}],
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                               "name": "cluster-admin"}}
        assert api.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json=binding).status_code == 403
        assert api.get("/api/v1/nodes").status_code == 200


def test_node_agent_serves_tls_only_to_clients_of_the_cluster_ca(cluster: ClusterState) -> None:
    creds = ClusterCredentials(cluster.data_dir)
    node_ip = cluster.nodes[0].node_ip
    url = f"https://{node_ip}:10250/healthz"  # the serving certificate names the node IP
    api_server_client = ca_context(cluster)
    api_server_client.load_cert_chain(*creds.kubelet_client)
    assert httpx.get(url, verify=api_server_client, timeout=10).text == "ok"
    with pytest.raises(httpx.HTTPError):  # no client certificate: refused in the handshake
        httpx.get(url, verify=ca_context(cluster), timeout=10)
    # Nor does any other cluster credential open it (a node's, the admin's): only the API server, which
    # authorizes pods/exec and pods/log first, may call node agents.
    for kubeconfig in (creds.node_kubeconfig("node-1"), cluster.kubeconfig):
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, verify=load_kubeconfig(kubeconfig).ssl_context(), timeout=10)


def test_kubectl_exec_and_logs_go_through_the_api_server_to_the_tls_node_agent(cluster: ClusterState) -> None:
    pods = json.loads(kubectl(cluster, "get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    name = next(p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running")
    exec_ = kubectl(cluster, "exec", name, "--", "sh", "-c", "echo over tls; exit 7")
    assert (exec_.returncode, exec_.stdout) == (7, "over tls\n"), exec_.stderr
    logs = kubectl(cluster, "logs", name)
    assert logs.returncode == 0, logs.stderr


def test_status_works_with_the_tls_kubeconfig(cluster: ClusterState) -> None:
    status = aiokube("status", "--data-dir", cluster.data_dir)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "node node-1" in status.stdout and "Ready=True" in status.stdout, status.stdout


def test_token_create_works_with_the_tls_kubeconfig(cluster: ClusterState) -> None:
    created = aiokube("token", "create", "--kubeconfig", cluster.kubeconfig, "--ttl", "10m")
    assert created.returncode == 0, created.stderr
    with open(ClusterCredentials(cluster.data_dir).ca_cert, "rb") as f:
        ca_hash = pki.ca_cert_hash(x509.load_pem_x509_certificate(f.read()))
    command = created.stdout.split()
    assert command[:4] == ["aiokube", "join", "--server", cluster.server], created.stdout
    assert command[command.index("--ca-cert-hash") + 1] == ca_hash
    # A joining machine reads cluster-info before it has any credential: allowed anonymously, as in kubeadm.
    with httpx.Client(base_url=cluster.server, verify=ca_context(cluster), timeout=10) as anonymous:
        assert anonymous.get("/api/v1/namespaces/kube-public/configmaps/cluster-info").status_code == 200
    # The kubelet-client CA a joining node agent will accept clients of (found beside the kubeconfig).
    published = kubectl(cluster, "-n", "kube-public", "get", "configmap", "aiokube-kubelet-client-ca", "-o", "json")
    assert published.returncode == 0, published.stderr
    with open(ClusterCredentials(cluster.data_dir).kubelet_client_ca) as f:
        assert json.loads(published.stdout)["data"]["ca.crt"] == f.read()


def secret_pod(secret: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: uses-secret}}
        spec:
          containers:
          - name: main
            image: localhost/busybox:latest
            imagePullPolicy: IfNotPresent
            command: ["sleep", "3600"]
            env: [{{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: {secret}, key: password}}}}}}]
            volumeMounts: [{{name: creds, mountPath: /creds}}]
          volumes: [{{name: creds, secret: {{secretName: {secret}}}}}]
        """)


def test_secrets_never_reach_the_logs(cluster: ClusterState) -> None:
    """A Secret's value goes through the API server, the node agent (env and a volume) and containerd, a wrong
    bearer token is refused, a bootstrap token is created: none of these values appears in any log `up` keeps."""
    password = f"pw-{os.urandom(8).hex()}"
    bogus_token = f"tok{os.urandom(8).hex()}"
    created = kubectl(cluster, "create", "secret", "generic", "app-creds", f"--from-literal=password={password}")
    assert created.returncode == 0, created.stderr
    applied = kubectl(cluster, "apply", "-f", "-", stdin=secret_pod("app-creds"))
    assert applied.returncode == 0, applied.stderr
    waited = kubectl(cluster, "wait", "--for=condition=Ready", "pod/uses-secret", "--timeout=60s")
    assert waited.returncode == 0, waited.stderr + kubectl(cluster, "describe", "pod", "uses-secret").stdout
    inside = kubectl(cluster, "exec", "uses-secret", "--", "sh", "-c", 'echo "$PASSWORD"; cat /creds/password')
    assert inside.stdout.split() == [password, password], inside.stderr  # it really went all the way through
    with httpx.Client(base_url=cluster.server, verify=ca_context(cluster), timeout=10) as client:
        refused = client.get("/api/v1/secrets", headers={"Authorization": f"Bearer {bogus_token}"})
    assert refused.status_code == 401
    token = aiokube("token", "create", "--kubeconfig", cluster.kubeconfig, "--ttl", "10m")
    assert token.returncode == 0, token.stderr
    bootstrap = token.stdout.split()[token.stdout.split().index("--token") + 1]
    assert kubectl(cluster, "delete", "pod", "uses-secret", "--grace-period=1").returncode == 0

    needles = {password, base64.b64encode(password.encode()).decode(), bogus_token,
               bootstrap.split(".")[1]}  # the token's secret half (its id is public, as in Kubernetes)
    logs = [os.path.join(d, f) for d, _, files in os.walk(cluster.data_dir) for f in files
            if f.endswith(".log") and "/kubelet/logs/" not in d + "/"]  # not the containers' own stdout
    assert any(os.path.basename(p) == "apiserver.log" for p in logs), logs
    assert any(os.path.basename(p) == "containerd.log" for p in logs), logs
    for path in logs:
        with open(path, errors="replace") as f:
            text = f.read()
        found = sorted(n for n in needles if n in text)
        assert not found, f"{path} holds secret values {found}"
        assert "PRIVATE KEY-----" not in text, f"{path} holds a private key"


def test_status_reports_a_stopped_component_and_fails(cluster: ClusterState) -> None:
    """Next to last: stops the node's DNS server (the re-up below starts everything again)."""
    dns = next(p for p in cluster.processes if p.name.startswith("clusterdns-"))
    os.kill(dns.pid, signal.SIGKILL)
    dns.stop(timeout=5)  # reaps it
    status = aiokube("status", "--data-dir", cluster.data_dir)
    assert status.returncode == 1, status.stdout
    assert any(line.startswith(dns.name) and line.endswith("STOPPED") for line in status.stdout.splitlines()), \
        status.stdout
    assert "node node-1" in status.stdout  # the API part still answers


def test_up_again_on_a_data_dir_from_before_tls_creates_the_pki(cluster: ClusterState) -> None:
    """Last in this module: restarts the cluster. A data dir written before `up` was secure has no pki/ and a
    credential-less kubeconfig; `up` gives it a CA and certificates and everything comes back."""
    down = aiokube("down", "--data-dir", cluster.data_dir)
    assert down.returncode == 0, down.stderr
    for leftover in ("pki", "kubeconfigs"):
        shutil.rmtree(os.path.join(cluster.data_dir, leftover))
    with open(cluster.kubeconfig, "w") as f:  # what `up` used to write: plain http, no user credentials
        f.write(f"apiVersion: v1\nkind: Config\nclusters: [{{name: aiokube, cluster: {{server: "
                f"'http://{cluster.api_host}:{cluster.api_port}'}}}}]\nusers: [{{name: admin, user: {{}}}}]\n"
                f"contexts: [{{name: aiokube, context: {{cluster: aiokube, user: admin}}}}]\n"
                f"current-context: aiokube\n")
    again = aiokube("up", "--data-dir", cluster.data_dir)
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert os.path.exists(ClusterCredentials(cluster.data_dir).ca_cert)
    assert kubeconfig_identity(cluster.kubeconfig) == ("kubernetes-admin", ["system:masters"])
    table = kubectl(cluster, "get", "deployment", "web")  # etcd data kept, kubectl in with the new kubeconfig
    assert table.returncode == 0, table.stderr
    # The pods come back in new containers, and exec reaches them through the node agent's new certificate.
    deadline = time.monotonic() + 60
    exec_ = kubectl(cluster, "exec", "deploy/web", "--", "echo", "back")
    while exec_.stdout != "back\n" and time.monotonic() < deadline:
        time.sleep(0.5)
        exec_ = kubectl(cluster, "exec", "deploy/web", "--", "echo", "back")
    assert exec_.stdout == "back\n", exec_.stderr
