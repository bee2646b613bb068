"""The node agent's "Shown by" scenarios end to end: a real single-node cluster (`aiokube up --nodes 1`: etcd,
API server, controllers, scheduler, node agent on its own containerd) driven only by the real kubectl.

All the scenario pods are applied at once when the module starts and each test waits for its own outcome, so
the module costs one cluster start plus the slowest scenario. `aiokube up` runs the node agent with the real
container back-off (10 s base: it passes no --backoff-base), which the scenarios are chosen to live with: the
first restart after an exit is immediate and CrashLoopBackOff shows from the second exit on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aiokube.cluster.state import ClusterState
from tests.support.etcd import free_port
from tests.support.kubectl import run_kubectl

pytestmark = [pytest.mark.containerd, pytest.mark.kubectl, pytest.mark.timeout(240)]

BUSYBOX = "localhost/busybox:latest"
MISSING_IMAGE = "localhost/no-such-image:v404"

# Everything the scenarios need, in one apply. Pods run the locally imported busybox image (no registry here).
MANIFESTS = textwrap.dedent(f"""\
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: app-config}}
    data: {{GREETING: hello-from-configmap, settings.conf: "mode=fast"}}
    ---
    apiVersion: v1
    kind: Secret
    metadata: {{name: app-secret}}
    stringData: {{PASSWORD: s3cret, token: t0ken}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: restarter}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: {BUSYBOX}
        imagePullPolicy: Never
        # PID 1 ignores signals it has no handler for: trap TERM so `kill 1` from kubectl exec ends it.
        command: ["sh", "-c", "trap 'exit 7' TERM; sleep 3600 & wait"]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: crasher}}
    spec:
      containers:
      - name: main
        image: {BUSYBOX}
        imagePullPolicy: Never
        command: ["sh", "-c", "echo boom; exit 3"]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: hog}}
    spec:
      restartPolicy: OnFailure
      containers:
      - name: main
        image: {BUSYBOX}
        imagePullPolicy: Never
        # dd holds a 64 MiB block in memory: far over the 16 MiB limit.
        command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
        resources: {{limits: {{memory: 16Mi}}}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: liveness}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {BUSYBOX}
        imagePullPolicy: Never
        # Healthy for ~3 s, then the probe's file goes away and the probe fails.
        command: ["sh", "-c", "touch /tmp/healthy; sleep 3; rm /tmp/healthy; exec sleep 3600"]
        livenessProbe:
          exec: {{command: ["cat", "/tmp/healthy"]}}
          periodSeconds: 1
          failureThreshold: 2
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: init-order}}
    spec:
      initContainers:
      - name: first
        image: {BUSYBOX}
        imagePullPolicy: Never
        command: ["sh", "-c", "echo first >> /work/order"]
        volumeMounts: [{{name: work, mountPath: /work}}]
      - name: second
        image: {BUSYBOX}
        imagePullPolicy: Never
        # Fails unless the first init container already ran to completion.
        command: ["sh", "-c", "grep -q first /work/order && echo second >> /work/order"]
        volumeMounts: [{{name: work, mountPath: /work}}]
      containers:
      - name: main
        image: {BUSYBOX}
        imagePullPolicy: Never
        command: ["sh", "-c", "echo app >> /work/order; exec sleep 3600"]
        volumeMounts: [{{name: work, mountPath: /work}}]
      volumes:
      - {{name: work, emptyDir: {{}}}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: configured}}
    spec:
      containers:
      - name: main
        image: {BUSYBOX}
        imagePullPolicy: Never
        command: ["sh", "-c"]
        args: ["echo args:$0:$1 > /tmp/args; exec sleep 3600", "alpha", "beta"]
        env:
        - {{name: FROM_CM, valueFrom: {{configMapKeyRef: {{name: app-config, key: GREETING}}}}}}
        - {{name: FROM_SECRET, valueFrom: {{secretKeyRef: {{name: app-secret, key: token}}}}}}
        - {{name: PLAIN, value: plain-value}}
        envFrom:
        - configMapRef: {{name: app-config}}
          prefix: CM_
        - secretRef: {{name: app-secret}}
        volumeMounts:
        - {{name: cm, mountPath: /etc/cm}}
        - {{name: sec, mountPath: /etc/sec}}
      volumes:
      - {{name: cm, configMap: {{name: app-config}}}}
      - {{name: sec, secret: {{secretName: app-secret}}}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: graceful}}
    spec:
      terminationGracePeriodSeconds: 20
      containers:
      - name: main
        image: {BUSYBOX}
        imagePullPolicy: Never
        # `wait` is interruptible, so the trap runs at once: a ~2 s clean shutdown, well inside the grace period.
        command: ["sh", "-c", "trap 'sleep 2; exit 0' TERM; sleep 3600 & wait"]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: missing-image}}
    spec:
      containers:
      - name: main
        image: {MISSING_IMAGE}
        imagePullPolicy: IfNotPresent
        command: ["true"]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: chatty}}
    spec:
      containers:
      - name: main
        image: {BUSYBOX}
        imagePullPolicy: Never
        command: ["sh", "-c", "echo early-line; exec sleep 3600"]
""")


def aiokube(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aiokube.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    """One secure single-node cluster for the module, with every scenario applied; purged at the end."""
    data_dir = str(tmp_path_factory.mktemp("cluster"))
    result = aiokube("up", "--data-dir", data_dir, "--nodes", "1", "--port", str(free_port()),
                     "--etcd-port", str(free_port()))
    state = ClusterState.load(data_dir)
    try:
        assert result.returncode == 0, f"aiokube up failed:\n{result.stdout}\n{result.stderr}"
        assert state is not None
        applied = kubectl(state, "apply", "-f", "-", stdin=MANIFESTS)
        assert applied.returncode == 0, applied.stderr
        yield state
    finally:
        down = aiokube("down", "--data-dir", data_dir, "--purge")
        assert down.returncode == 0, down.stderr
        if state is not None:
            assert not [p.name for p in state.processes if p.alive()], "processes left after down"


def kubectl(state: ClusterState, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_kubectl(["kubectl", *args], kubeconfig=state.kubeconfig, home=state.data_dir, stdin=stdin)


def get_pod(state: ClusterState, name: str) -> dict[str, Any]:
    out = kubectl(state, "get", "pod", name, "-o", "json")
    assert out.returncode == 0, out.stderr
    pod: dict[str, Any] = json.loads(out.stdout)
    return pod


def main_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def wait_for_pod(state: ClusterState, name: str, condition: Callable[[dict[str, Any]], bool], what: str,
                 timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    pod = get_pod(state, name)
    while not condition(pod):
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}: not {what} after {timeout}s:\n{json.dumps(pod.get('status'), indent=1)}")
        time.sleep(0.5)
        pod = get_pod(state, name)
    return pod


def is_running(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and "running" in main_status(pod).get("state", {})


def exec_in(state: ClusterState, name: str, *command: str) -> str:
    out = kubectl(state, "exec", name, "--", *command)
    assert out.returncode == 0, f"exec {command} in {name}: {out.stderr}"
    return out.stdout


def test_pod_reports_start_time_image_and_image_id(cluster: ClusterState) -> None:
    pod = wait_for_pod(cluster, "configured", is_running, "Running")
    status = pod["status"]
    assert status["startTime"].endswith("Z")
    main = main_status(pod)
    assert main["image"] == BUSYBOX
    assert main["imageID"], main  # the runtime's image reference (digest), never empty once running
    assert main["containerID"].startswith("containerd://")
    jsonpath = kubectl(cluster, "get", "pod", "configured", "-o", "jsonpath={.status.containerStatuses[0].imageID}")
    assert jsonpath.returncode == 0 and jsonpath.stdout == main["imageID"]


def test_killed_container_is_restarted(cluster: ClusterState) -> None:
    first = wait_for_pod(cluster, "restarter", is_running, "Running")
    first_id = main_status(first)["containerID"]
    assert main_status(first)["restartCount"] == 0
    # The container ends under the exec, which then reports the runtime's kill of its process (137), as in
    # Kubernetes; either way the signal was delivered.
    killed = kubectl(cluster, "exec", "restarter", "--", "kill", "1")
    assert killed.returncode in (0, 137), killed.stderr
    pod = wait_for_pod(cluster, "restarter", lambda p: main_status(p).get("restartCount", 0) >= 1 and is_running(p),
                       "restarted and Running")
    main = main_status(pod)
    assert main["restartCount"] == 1
    assert main["containerID"] != first_id
    assert main["lastState"]["terminated"]["exitCode"] == 7  # the trap's exit code, reported as the last state


def test_crashing_container_reaches_crash_loop_back_off(cluster: ClusterState) -> None:
    def crash_looping(p: dict[str, Any]) -> bool:
        return main_status(p).get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"

    pod = wait_for_pod(cluster, "crasher", crash_looping, "in CrashLoopBackOff")
    main = main_status(pod)
    assert main["restartCount"] >= 1
    assert "back-off" in main["state"]["waiting"]["message"]
    assert main["lastState"]["terminated"]["exitCode"] == 3
    table = kubectl(cluster, "get", "pod", "crasher")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[1].split()[2] == "CrashLoopBackOff", table.stdout  # the STATUS column
    previous = kubectl(cluster, "logs", "crasher", "--previous")
    assert previous.returncode == 0 and previous.stdout == "boom\n", previous.stderr


def test_memory_hog_is_oom_killed(cluster: ClusterState) -> None:
    # containerd learns of the OOM from the cgroup's event a moment apart from the exit, so the reason is polled
    # for rather than read off the first termination seen.
    pod = wait_for_pod(cluster, "hog", lambda p: main_status(p).get("lastState", {}).get("terminated", {}).get(
        "reason") == "OOMKilled", "OOMKilled")
    assert main_status(pod)["lastState"]["terminated"]["exitCode"] == 137
    assert main_status(pod)["restartCount"] >= 1  # OnFailure restarts it


def test_failing_liveness_probe_restarts_the_container(cluster: ClusterState) -> None:
    pod = wait_for_pod(cluster, "liveness", lambda p: main_status(p).get("restartCount", 0) >= 1,
                       "restarted by its liveness probe")
    assert main_status(pod)["lastState"]["terminated"]["finishedAt"]
    events = kubectl(cluster, "get", "events", "--field-selector", "involvedObject.name=liveness", "-o", "json")
    assert events.returncode == 0, events.stderr
    reasons = {(e["reason"], e.get("message", "")) for e in json.loads(events.stdout)["items"]}
    assert any(reason == "Unhealthy" and "Liveness probe failed" in message for reason, message in reasons), reasons


def test_init_containers_run_first_and_in_order(cluster: ClusterState) -> None:
    pod = wait_for_pod(cluster, "init-order", is_running, "Running")
    assert exec_in(cluster, "init-order", "cat", "/work/order") == "first\nsecond\napp\n"
    inits = pod["status"]["initContainerStatuses"]
    assert [(s["name"], s["state"]["terminated"]["reason"]) for s in inits] == [
        ("first", "Completed"), ("second", "Completed")]
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["Initialized"] == "True"


def test_config_map_and_secret_volumes_env_and_args(cluster: ClusterState) -> None:
    wait_for_pod(cluster, "configured", is_running, "Running")
    env = dict(line.split("=", 1) for line in exec_in(cluster, "configured", "env").splitlines() if "=" in line)
    assert env["FROM_CM"] == "hello-from-configmap"
    assert env["FROM_SECRET"] == "t0ken"
    assert env["PLAIN"] == "plain-value"
    assert env["CM_GREETING"] == "hello-from-configmap"  # envFrom configMapRef with its prefix
    assert env["PASSWORD"] == "s3cret" and env["token"] == "t0ken"  # envFrom secretRef
    assert exec_in(cluster, "configured", "cat", "/tmp/args") == "args:alpha:beta\n"
    assert exec_in(cluster, "configured", "cat", "/etc/cm/settings.conf") == "mode=fast"
    assert exec_in(cluster, "configured", "cat", "/etc/cm/GREETING") == "hello-from-configmap"
    assert exec_in(cluster, "configured", "cat", "/etc/sec/PASSWORD") == "s3cret"


def test_logs_since_seconds(cluster: ClusterState) -> None:
    wait_for_pod(cluster, "chatty", is_running, "Running")
    deadline = time.monotonic() + 30
    while "early-line" not in (logs := kubectl(cluster, "logs", "chatty").stdout):
        assert time.monotonic() < deadline, f"chatty never logged early-line: {logs!r}"
        time.sleep(0.3)
    time.sleep(3)  # early-line is now over 3 s old ...
    # ... and a line written to the container's stdout now (through PID 1's descriptor) is fresh.
    exec_in(cluster, "chatty", "sh", "-c", "echo late-line > /proc/1/fd/1")
    assert kubectl(cluster, "logs", "chatty").stdout == "early-line\nlate-line\n"
    recent = kubectl(cluster, "logs", "chatty", "--since=2s")  # sinceSeconds=2 on the node server
    assert recent.returncode == 0, recent.stderr
    assert recent.stdout == "late-line\n"


def test_missing_image_reports_err_image_pull_with_the_image(cluster: ClusterState) -> None:
    def pull_failed(p: dict[str, Any]) -> bool:
        reason = main_status(p).get("state", {}).get("waiting", {}).get("reason")
        return reason in ("ErrImagePull", "ImagePullBackOff")

    pod = wait_for_pod(cluster, "missing-image", pull_failed, "failing to pull")
    waiting = main_status(pod)["state"]["waiting"]
    assert MISSING_IMAGE in waiting["message"], waiting
    assert pod["status"]["phase"] == "Pending"
    table = kubectl(cluster, "get", "pod", "missing-image")
    assert table.stdout.splitlines()[1].split()[2] in ("ErrImagePull", "ImagePullBackOff"), table.stdout


def test_delete_waits_for_graceful_stop_and_the_pod_goes_away(cluster: ClusterState) -> None:
    wait_for_pod(cluster, "graceful", is_running, "Running")
    started = time.monotonic()
    deleted = kubectl(cluster, "delete", "pod", "graceful")  # waits for the object to disappear
    took = time.monotonic() - started
    assert deleted.returncode == 0, deleted.stderr
    assert 'pod "graceful" deleted' in deleted.stdout
    assert took >= 2.0, f"delete returned after {took:.1f}s: the SIGTERM trap sleeps 2 s"
    assert took < 15, f"delete took {took:.1f}s: the container should have exited well inside its grace period"
    gone = kubectl(cluster, "get", "pod", "graceful")
    assert gone.returncode != 0
    assert 'pods "graceful" not found' in gone.stderr
