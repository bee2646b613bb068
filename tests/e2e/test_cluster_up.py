"""The thin end-to-end path: `aiokube up`, then `kubectl apply` of a Deployment ends in running containers on
containerd; `aiokube down` leaves no process behind."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    data_dir = str(tmp_path_factory.mktemp("cluster"))
    result = aiokube("up", "--data-dir", data_dir, "--nodes", "1", "--port", str(free_port()),
                     "--etcd-port", str(free_port()))
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
