"""Real kubectl (`/usr/bin/kubectl`, 1.32 against our v1.32 server) drives Deployments through the controllers:
`create deployment`, `apply`, `rollout status`, `set image`, `rollout history`, `rollout undo`, `rollout pause/resume`,
`scale`. Outputs are compared with what kubectl prints against Kubernetes.

Real etcd + API server + the controller-manager (in this process); no node agent: a watcher plays the kubelet
and marks every new pod Ready through pods/status shortly after it appears.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aiokube.client import ApiClient
from controllers.manager import ManagerOptions
from controllers.podutil import is_active
from controllers.testing import RolloutChecker, eventually, running_manager, write_kubeconfig
from tests.support.apiserver import running_apiserver

pytestmark = [pytest.mark.etcd, pytest.mark.kubectl,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="NO KUBECTL: these tests need kubectl")]


KUBECTL_TIMEOUT = 90.0
# What `kubectl create deployment web --image=busybox:1 --replicas=2` generates, sent by client-side apply.
MANIFEST = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: busybox, image: "busybox:1"}]}
"""
NEVER_READY = "busybox:crashloop"  # the image whose pods the fake kubelet never marks Ready


@pytest.fixture
def server(etcd_url: str, etcd_prefix: str) -> Iterator[str]:
    with running_apiserver(etcd_url, etcd_prefix, bookmark_interval=0.5) as url:
        yield url


@pytest.fixture
async def client(server: str) -> AsyncIterator[ApiClient]:
    async with ApiClient(server) as api:
        yield api


class Kubectl:
    def __init__(self, server: str, home: Path, namespace: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "HOME": str(home),
                    "KUBECONFIG": write_kubeconfig(str(home / "kubeconfig"), server)}
        self.namespace = namespace

    async def __call__(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        """Run kubectl; the kubectl flag --timeout (where used) bounds it, this is the backstop."""
        proc = await asyncio.create_subprocess_exec("kubectl", "-n", self.namespace, *args, env=self.env,
                                                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), KUBECTL_TIMEOUT)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def ok(self, *args: str, stdin: str | None = None) -> str:
        code, out, err = await self(*args, stdin=stdin)
        assert code == 0, f"kubectl {' '.join(args)} exited {code}:\n{out}\n{err}"
        return out


@pytest.fixture
async def cluster(server: str, client: ApiClient, tmp_path: Path) -> AsyncIterator[tuple[Kubectl, ApiClient]]:
    namespace = f"ro-{uuid.uuid4().hex[:8]}"
    await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    kubelet = RolloutChecker(client, namespace, "web", ready_delay=0.2,
                             ready_if=lambda pod: pod["spec"]["containers"][0]["image"] != NEVER_READY)
    rv = (await client.list("pods", namespace=namespace))["metadata"]["resourceVersion"]
    watcher = asyncio.create_task(kubelet.run(rv))
    options = ManagerOptions(leader_elect=False, controllers=["replicaset", "deployment", "garbagecollector"])
    try:
        async with running_manager(client, options):
            yield Kubectl(server, tmp_path / "home", namespace), client
    finally:
        watcher.cancel()


async def images(client: ApiClient, namespace: str) -> list[str]:
    pods = (await client.list("pods", namespace=namespace, label_selector="app=web"))["items"]
    return sorted(p["spec"]["containers"][0]["image"] for p in pods if is_active(p))


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


async def test_rollout_lifecycle_with_kubectl(cluster: tuple[Kubectl, ApiClient]) -> None:
    kubectl, client = cluster
    ns = kubectl.namespace
    assert await kubectl.ok("create", "deployment", "web", "--image=busybox:1", "--replicas=4") == \
        "deployment.apps/web created\n"
    out = await kubectl.ok("rollout", "status", "deployment/web", "--timeout=60s")
    assert last_line(out) == 'deployment "web" successfully rolled out'
    assert await images(client, ns) == ["busybox:1"] * 4

    assert await kubectl.ok("set", "image", "deployment/web", "busybox=busybox:2") == \
        "deployment.apps/web image updated\n"
    out = await kubectl.ok("rollout", "status", "deployment/web", "--timeout=60s")
    assert last_line(out) == 'deployment "web" successfully rolled out'
    assert await images(client, ns) == ["busybox:2"] * 4

    history = await kubectl.ok("rollout", "history", "deployment/web")
    assert history.splitlines()[0].rstrip() == "deployment.apps/web"
    assert [line.split() for line in history.strip().splitlines()[1:]] == \
        [["REVISION", "CHANGE-CAUSE"], ["1", "<none>"], ["2", "<none>"]]
    detail = await kubectl.ok("rollout", "history", "deployment/web", "--revision=1")
    assert detail.splitlines()[0] == "deployment.apps/web with revision #1"
    assert ["Image:", "busybox:1"] in [line.split() for line in detail.splitlines()], detail

    assert await kubectl.ok("rollout", "undo", "deployment/web") == "deployment.apps/web rolled back\n"
    out = await kubectl.ok("rollout", "status", "deployment/web", "--timeout=60s")
    assert last_line(out) == 'deployment "web" successfully rolled out'
    assert await images(client, ns) == ["busybox:1"] * 4
    history = await kubectl.ok("rollout", "history", "deployment/web")
    # The revision-1 ReplicaSet is reused (kubectl's undo patch carries `creationTimestamp: null` and
    # `resources: {}`, which must not make it a different template) and becomes revision 3.
    assert [line.split()[0] for line in history.strip().splitlines()[2:]] == ["2", "3"]
    assert len((await client.list("replicasets", namespace=ns))["items"]) == 2

    assert await kubectl.ok("rollout", "undo", "deployment/web", "--to-revision=2") == \
        "deployment.apps/web rolled back\n"
    await kubectl.ok("rollout", "status", "deployment/web", "--timeout=60s")
    assert await images(client, ns) == ["busybox:2"] * 4

    # pause: template changes wait; scaling still happens
    assert await kubectl.ok("rollout", "pause", "deployment/web") == "deployment.apps/web paused\n"
    code, _, err = await kubectl("rollout", "pause", "deployment/web")
    assert code == 1 and err.strip() == 'error: deployments.apps "web" is already paused'
    await kubectl.ok("set", "image", "deployment/web", "busybox=busybox:3")
    assert await kubectl.ok("scale", "deployment/web", "--replicas=6") == "deployment.apps/web scaled\n"

    async def six_old_pods() -> bool:
        return await images(client, ns) == ["busybox:2"] * 6

    await eventually(six_old_pods, within=20)
    await asyncio.sleep(0.5)
    assert await images(client, ns) == ["busybox:2"] * 6  # still paused
    code, out, _ = await kubectl("rollout", "status", "deployment/web", "--timeout=1s")
    assert code == 1
    assert last_line(out) == \
        'Waiting for deployment "web" rollout to finish: 0 out of 6 new replicas have been updated...'

    assert await kubectl.ok("rollout", "resume", "deployment/web") == "deployment.apps/web resumed\n"
    out = await kubectl.ok("rollout", "status", "deployment/web", "--timeout=60s")
    assert last_line(out) == 'deployment "web" successfully rolled out'
    assert await images(client, ns) == ["busybox:3"] * 6

    assert await kubectl.ok("scale", "deployment/web", "--replicas=2") == "deployment.apps/web scaled\n"
    out = await kubectl.ok("rollout", "status", "deployment/web", "--timeout=60s")
    assert last_line(out) == 'deployment "web" successfully rolled out'

    async def two_pods() -> bool:
        return await images(client, ns) == ["busybox:3"] * 2

    await eventually(two_pods, within=20)
    got = await kubectl.ok("get", "deployment", "web", "-o", "jsonpath={.status.replicas} "
                           "{.status.updatedReplicas} {.status.readyReplicas} {.status.availableReplicas} "
                           "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}")
    assert got == "2 2 2 2 5"


async def test_rollout_status_reports_progress_deadline_exceeded(cluster: tuple[Kubectl, ApiClient]) -> None:
    kubectl, client = cluster
    await kubectl.ok("apply", "-f", "-", stdin=MANIFEST)
    await kubectl.ok("rollout", "status", "deployment/web", "--timeout=60s")
    # A short deadline and new pods that never get Ready: the Progressing condition turns
    # ProgressDeadlineExceeded and `rollout status` fails with kubectl's message. (Not 1 s: condition times have
    # 1 s resolution, so a 1 s deadline can expire before the new ReplicaSet reports its first pod, and that
    # report counts as progress again — on Kubernetes too.)
    await kubectl.ok("patch", "deployment", "web", "-p", '{"spec":{"progressDeadlineSeconds":3}}')
    await kubectl.ok("set", "image", "deployment/web", f"busybox={NEVER_READY}")
    code, _, err = await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert code == 1
    assert err.strip() == 'error: deployment "web" exceeded its progress deadline'
    d = await client.get("deployments", "web", namespace=kubectl.namespace)
    [progressing] = [c for c in d["status"]["conditions"] if c["type"] == "Progressing"]
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
