"""The real kubectl 1.32 (and the official `kubernetes` Python client) against the real API server on etcd."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.apiserver import running_apiserver
from tests.support.kubectl import kubectl_env, run_kubectl

pytestmark = [pytest.mark.etcd, pytest.mark.kubectl]

KUBECTL = "/usr/bin/kubectl"

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: demo
data:
  a: "1"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: IMAGE
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  selector: {app: web}
  ports:
  - port: 80
"""


class Kubectl:
    def __init__(self, server: str, home: str) -> None:
        self.server, self.home = server, home

    def argv(self, *args: str) -> list[str]:
        return [KUBECTL, "--server", self.server, "--cache-dir", os.path.join(self.home, "cache"), *args]

    @property
    def kubeconfig(self) -> str:
        return os.path.join(self.home, "none")  # no file: --server alone says where to go

    def env(self) -> dict[str, str]:
        return kubectl_env(self.kubeconfig, self.home)

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_kubectl(self.argv(*args), kubeconfig=self.kubeconfig, home=self.home, stdin=stdin, check=check)


@pytest.fixture
def kubectl(etcd_url: str, etcd_prefix: str) -> Iterator[Kubectl]:
    if not Path(KUBECTL).exists():
        pytest.skip("KUBECTL NOT INSTALLED: /usr/bin/kubectl is missing, the kubectl e2e tests cannot run")
    home = tempfile.mkdtemp(prefix="aiokube-kubectl-")
    try:
        with running_apiserver(etcd_url, etcd_prefix) as url:
            yield Kubectl(url, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_apply_get_and_edit_flow(kubectl: Kubectl) -> None:
    out = kubectl("apply", "-f", "-", stdin=MANIFEST.replace("IMAGE", "nginx:1.25")).stdout
    assert "namespace/demo created" in out and "deployment.apps/web created" in out
    out = kubectl("apply", "-f", "-", stdin=MANIFEST.replace("IMAGE", "nginx:1.26")).stdout
    assert "deployment.apps/web configured" in out and "configmap/cfg unchanged" in out
    image = kubectl("-n", "demo", "get", "deploy", "web", "-o",
                    "jsonpath={.spec.template.spec.containers[0].image} {.metadata.generation}").stdout
    assert image == "nginx:1.26 2"
    out = kubectl("apply", "--server-side", "-f", "-", stdin=MANIFEST.replace("IMAGE", "nginx:1.26")).stdout
    assert "deployment.apps/web serverside-applied" in out
    kept = kubectl("-n", "demo", "get", "deploy", "web", "-o",
                   "jsonpath={.spec.template.metadata.labels.app} {.metadata.generation}").stdout
    assert kept == "web 2"  # the CSA→SSA migration changes no spec field

    table = kubectl("-n", "demo", "get", "deploy").stdout.splitlines()
    assert table[0].split()[0] == "NAME" and table[1].split()[0] == "web"
    assert "web" in kubectl("-n", "demo", "get", "deploy", "-o", "wide").stdout
    assert "kind: ConfigMap" in kubectl("-n", "demo", "get", "cm", "cfg", "-o", "yaml").stdout
    assert '"kind": "Service"' in kubectl("-n", "demo", "get", "svc", "web", "-o", "json").stdout
    assert kubectl("-n", "demo", "get", "deploy", "-l", "app=web", "-o", "name").stdout.strip() == \
        "deployment.apps/web"
    assert kubectl("-n", "demo", "get", "deploy", "-l", "app=nope", "-o", "name").stdout.strip() == ""
    assert kubectl("-n", "demo", "get", "cm", "--field-selector", "metadata.name=cfg", "-o", "name").stdout.strip() \
        == "configmap/cfg"
    all_ns = kubectl("get", "cm", "-A").stdout
    assert "demo" in all_ns and "NAMESPACE" in all_ns
    chunked = kubectl("get", "ns", "--chunk-size=1", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/demo", "namespace/kube-system"} <= set(chunked)

    describe = kubectl("-n", "demo", "describe", "deploy", "web").stdout
    assert "Name:" in describe and "nginx:1.26" in describe
    assert "labeled" in kubectl("-n", "demo", "label", "cm", "cfg", "env=prod").stdout
    assert "annotated" in kubectl("-n", "demo", "annotate", "cm", "cfg", "note=hi").stdout
    labels = kubectl("-n", "demo", "get", "cm", "cfg", "-o",
                     "jsonpath={.metadata.labels.env} {.metadata.annotations.note}").stdout
    assert labels == "prod hi"
    assert "scaled" in kubectl("-n", "demo", "scale", "deploy", "web", "--replicas=4").stdout
    assert kubectl("-n", "demo", "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "4"

    started = time.monotonic()
    assert 'deployment.apps "web" deleted' in kubectl("-n", "demo", "delete", "deploy", "web").stdout
    assert time.monotonic() - started < 20
    missing = kubectl("-n", "demo", "get", "deploy", "web", check=False)
    assert missing.returncode != 0 and 'deployments.apps "web" not found' in missing.stderr


def test_imperative_creates_use_protobuf(kubectl: Kubectl) -> None:
    assert "namespace/proto created" in kubectl("create", "namespace", "proto").stdout
    assert "configmap/c1 created" in kubectl("-n", "proto", "create", "configmap", "c1", "--from-literal=k=v").stdout
    assert kubectl("-n", "proto", "get", "cm", "c1", "-o", "jsonpath={.data.k}").stdout == "v"
    assert "secret/s1 created" in kubectl("-n", "proto", "create", "secret", "generic", "s1",
                                          "--from-literal=k=v").stdout
    assert "created" in kubectl("-n", "proto", "create", "deployment", "d", "--image=nginx", "--replicas=0",
                                "--port=80", "--", "sleep", "10").stdout
    spec = kubectl("-n", "proto", "get", "deploy", "d", "-o",
                   "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].command} "
                   "{.spec.template.spec.containers[0].ports[0].containerPort}").stdout
    assert spec == '0 ["sleep","10"] 80'
    assert "job.batch/j created" in kubectl("-n", "proto", "create", "job", "j", "--image=busybox", "--",
                                            "echo", "hi").stdout
    assert kubectl("-n", "proto", "get", "job", "j", "-o", "jsonpath={.spec.template.spec.restartPolicy}").stdout \
        == "Never"


def test_invalid_object_has_a_readable_message(kubectl: Kubectl) -> None:
    bad = MANIFEST.split("---\n")[2].replace("IMAGE", "x").replace("replicas: 2", 'replicas: "two"') \
        .replace("namespace: demo", "namespace: default")
    result = kubectl("create", "-f", "-", stdin=bad, check=False)
    assert result.returncode != 0
    assert 'The Deployment "web" is invalid' in result.stderr and "spec.replicas" in result.stderr
    unknown = MANIFEST.split("---\n")[1].replace("data:", "bogus: 1\ndata:") \
        .replace("namespace: demo", "namespace: default")
    result = kubectl("create", "-f", "-", stdin=unknown, check=False)
    assert result.returncode != 0 and 'unknown field "bogus"' in result.stderr


def test_get_watch_sees_new_objects(kubectl: Kubectl) -> None:
    process = subprocess.Popen(kubectl.argv("get", "cm", "-w"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=kubectl.env())
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 15
        created = False
        while time.monotonic() < deadline and not any("watched" in line for line in lines):
            if not created:
                time.sleep(1.0)  # let kubectl list and open its watch first
                kubectl("create", "configmap", "watched", "--from-literal=a=b")
                created = True
            time.sleep(0.1)
        assert any("watched" in line for line in lines), lines
        assert process.poll() is None  # the stream stays open
    finally:
        process.terminate()
        process.wait(10)


def test_api_resources(kubectl: Kubectl) -> None:
    out = kubectl("api-resources").stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "deploy" in rows["deployments"] and "apps/v1" in rows["deployments"]
    assert "Pod" in rows["pods"] and "po" in rows["pods"]


def test_official_python_client_lists_and_watches(kubectl: Kubectl) -> None:
    from kubernetes import client, watch

    configuration = client.Configuration()
    configuration.host = kubectl.server
    api = client.CoreV1Api(client.ApiClient(configuration))
    api.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py"),
                                                                    data={"k": "v"}))
    listed = api.list_namespaced_config_map("default")
    assert [c.metadata.name for c in listed.items] == ["py"]
    stream = watch.Watch().stream(api.list_namespaced_config_map, "default", timeout_seconds=2,
                                  resource_version="0")
    events = [(e["type"], e["object"].metadata.name) for e in stream]
    assert ("ADDED", "py") in events
    assert {n.metadata.name for n in api.list_namespace().items} >= {"default", "kube-system"}
