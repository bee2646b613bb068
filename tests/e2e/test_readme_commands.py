"""The README's two set-up commands, run as written on a clean checkout (issue 7).

The commands are read from README.md's set-up code block, so this test follows the README. The repository's
HEAD is cloned into a temp dir (uncommitted changes are not part of it: a clean checkout is what a newcomer
gets), and there:

  1. `make up` (DATA_DIR in a temp dir, free ports through UP_ARGS so a developer's own cluster on the default
     ports is untouched) installs the venv, starts a cluster; the real kubectl with the written kubeconfig sees
     the node Ready and runs a Deployment of localhost/busybox:latest; `make down` leaves no process or netns;
  2. `make test` runs, narrowed to one small unit test file.

Slow by nature: the fresh .venv alone takes minutes (pip's index round-trips), which the test measures and
prints. AIOKUBE_README_TEST_REPO=PATH clones another repository (e.g. a scratch commit of a working tree).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kubectl import run_kubectl
from tests.support.processes import processes_mentioning

pytestmark = [pytest.mark.containerd, pytest.mark.kubectl]

REPO = Path(__file__).resolve().parents[2]
SOURCE_REPO = Path(os.environ.get("AIOKUBE_README_TEST_REPO", str(REPO)))
MAKE_UP_TIMEOUT = 1200  # a fresh venv (~6 min here) plus image builds and the cluster start
# Why one file: the whole suite is what CI already runs through this very command; here only the command's
# plumbing (install.sh reused, pytest from the clone's venv, its exit status) is under test.
SMALL_UNIT_TEST_FILE = "tests/unit/test_selectors.py"

DEPLOYMENT = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: readme
    spec:
      replicas: 1
      selector:
        matchLabels: {app: readme}
      template:
        metadata:
          labels: {app: readme}
        spec:
          containers:
          - name: main
            image: localhost/busybox:latest
            imagePullPolicy: Never
            command: ["sleep", "3600"]
""")


def readme_setup_commands(readme: str) -> list[str]:
    """The commands of the first code block under the README's "Set-up" heading, comments stripped."""
    section = re.search(r"^## Set-up.*?$(.*?)^## ", readme, re.MULTILINE | re.DOTALL)
    assert section, "README.md has no '## Set-up' section"
    block = re.search(r"```\w*\n(.*?)```", section.group(1), re.DOTALL)
    assert block, "README.md's set-up section has no code block"
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [c for c in commands if c]


def test_readme_setup_block_is_the_two_make_commands() -> None:
    assert readme_setup_commands((REPO / "README.md").read_text()) == ["make up", "make test"]


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports, below the ephemeral range (32768+ here): `make up` binds
    them only minutes later, after the venv install's many outgoing connections, which take ephemeral ports."""
    for _ in range(200):
        first = random.randrange(20000, 32000 - count)
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind(("0.0.0.0", port))
        except OSError:
            continue
        return first
    raise AssertionError(f"no {count} consecutive free ports")


def log_tails(data_dir: str, lines: int = 15) -> str:
    """The end of every component log of the cluster, for failure messages (the data dir goes away after)."""
    tails = []
    for log in sorted(Path(data_dir).rglob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        tails.append(f"--- {log}\n" + "\n".join(text))
    return "\n".join(tails)


def cluster_netns(data_dir: str) -> list[str]:
    """The network namespaces of the cluster in `data_dir` (named aiokube-<first 6 hex of sha256(dir)>-…)."""
    cluster_id = hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:6]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(f"aiokube-{cluster_id}-")]


def node_routes(node_ip: str) -> list[str]:
    """Host routes aiokube installed (proto 250) towards the node."""
    listed = subprocess.run(["ip", "route", "show", "proto", "250"], capture_output=True, text=True,
                            timeout=30).stdout
    return [line for line in listed.splitlines() if f"via {node_ip} " in f"{line} "]


class Step:
    """Runs one shell-level step in the clone, timed, with its output kept for failure messages."""

    def __init__(self, clone: Path) -> None:
        self.clone = clone
        self.durations: dict[str, float] = {}

    def run(self, label: str, argv: list[str], *, timeout: float,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        # When this suite itself runs under `make test`, the outer make's variables must not reach the inner one.
        inherited = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        started = time.monotonic()
        result = subprocess.run(argv, cwd=self.clone, capture_output=True, text=True, timeout=timeout,
                                env={**inherited, **(env or {})})
        self.durations[label] = time.monotonic() - started
        print(f"[readme] {label}: {' '.join(argv)} -> exit {result.returncode} in {self.durations[label]:.1f}s",
              flush=True)
        return result


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    dirty = subprocess.run(["git", "-C", str(SOURCE_REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=60).stdout.strip()
    if dirty:
        warnings.warn(f"{SOURCE_REPO} has uncommitted changes: test_readme_commands tests HEAD, not the working tree",
                      stacklevel=1)
        print("\n" + "!" * 100 + f"\n!! {SOURCE_REPO} has uncommitted changes: this test clones and tests HEAD, "
              "NOT the working tree\n" + "!" * 100, file=sys.stderr, flush=True)
    target = tmp_path / "checkout"
    cloned = subprocess.run(["git", "clone", "--quiet", str(SOURCE_REPO), str(target)],
                            capture_output=True, text=True, timeout=300)
    assert cloned.returncode == 0, cloned.stderr
    try:
        yield target
    finally:
        shutil.rmtree(target, ignore_errors=True)


@pytest.fixture
def data_dir() -> Iterator[str]:
    """A short path on purpose: containerd's sockets live under it, and a unix socket path has at most 107 bytes
    (pytest's tmp_path plus nodes/node-1/containerd/containerd.sock.ttrpc would exceed that)."""
    path = tempfile.mkdtemp(prefix="aiokube-readme-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(MAKE_UP_TIMEOUT + 900)
def test_readme_commands_on_a_clean_checkout(clone: Path, data_dir: str, tmp_path: Path) -> None:
    make_up, make_test = readme_setup_commands((clone / "README.md").read_text())
    home = tmp_path / "home"
    home.mkdir()
    make_vars = [f"DATA_DIR={data_dir}",
                 f"UP_ARGS=--port {free_ports(1)} --etcd-port {free_ports(2)}"]  # etcd: client and peer ports
    steps = Step(clone)
    node_ip = ""
    try:
        up = steps.run("make up", [*shlex.split(make_up), *make_vars], timeout=MAKE_UP_TIMEOUT)
        assert up.returncode == 0, \
            f"`{make_up}` failed:\n{up.stdout[-4000:]}\n{up.stderr[-4000:]}\n{log_tails(data_dir)}"
        assert (clone / ".venv" / "bin" / "aiokube").exists(), "make up did not create the clone's own venv"
        kubeconfig = os.path.join(data_dir, "kubeconfig")
        assert os.path.exists(kubeconfig), up.stdout

        def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return run_kubectl(["kubectl", *args], kubeconfig=kubeconfig, home=str(home), stdin=stdin)

        nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
        assert [n["metadata"]["name"] for n in nodes] == ["node-1"]
        ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}
        assert ready.get("Ready") == "True", nodes[0]["status"]["conditions"]
        node_ip = next(a["address"] for a in nodes[0]["status"]["addresses"] if a["type"] == "InternalIP")
        assert cluster_netns(data_dir), "the node's network namespace is not where this test looks for it"
        assert node_routes(node_ip), "the host route to the node's pods is not where this test looks for it"

        applied = kubectl("apply", "-f", "-", stdin=DEPLOYMENT)
        assert applied.returncode == 0, applied.stderr
        rollout = kubectl("rollout", "status", "deployment/readme", "--timeout=90s")
        assert rollout.returncode == 0, rollout.stdout + rollout.stderr + kubectl("get", "pods", "-o", "wide").stdout
        pods = json.loads(kubectl("get", "pods", "-l", "app=readme", "-o", "json").stdout)["items"]
        assert [p["status"]["phase"] for p in pods] == ["Running"], pods
        assert pods[0]["status"]["containerStatuses"][0]["image"].endswith("localhost/busybox:latest")
    finally:
        # Even a failed `make up` may have started something. Checked below, so a failure above stays the one
        # reported.
        down = steps.run("make down", ["make", "down", f"DATA_DIR={data_dir}"], timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    left = [f"{pid}: {cmd}" for pid, cmd in processes_mentioning(str(clone), data_dir)]
    assert left == [], "processes left after make down:\n" + "\n".join(left)
    assert cluster_netns(data_dir) == [], "network namespaces left after make down"
    if node_ip:
        assert node_routes(node_ip) == [], "routes left after make down"

    # The second command: install.sh finds everything in place, then pytest runs from the clone's venv.
    tested = steps.run("make test", shlex.split(make_test), timeout=600,
                       env={"PYTEST_ADDOPTS": SMALL_UNIT_TEST_FILE})
    assert tested.returncode == 0, tested.stdout[-4000:] + tested.stderr[-4000:]
    assert re.search(r"\d+ passed", tested.stdout), tested.stdout
    assert "creating the Python environment" not in tested.stdout, "make test reinstalled an up-to-date venv"
    print("[readme] durations: " + ", ".join(f"{k} {v:.0f}s" for k, v in steps.durations.items()), flush=True)
