"""`python -m scheduler --kubeconfig FILE --leader-elect` as a process: takes the Lease, binds a pod, exits 0
on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aiokube.client import ApiClient
from tests.unit.scheduler_fixtures import make_node, make_pod

pytestmark = pytest.mark.etcd
ROOT = Path(__file__).resolve().parents[2]


def start_scheduler(kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen([sys.executable, "-m", "scheduler", "--kubeconfig", str(kubeconfig),
                                 "--leader-elect"], cwd=ROOT, stderr=stderr)


async def test_process_with_leader_election(apiserver: str, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
        f"clusters: [{{name: t, cluster: {{server: '{apiserver}'}}}}]\n"
        "users: [{name: t, user: {}}]\ncontexts: [{name: t, context: {cluster: t, user: t}}]\n")
    process = start_scheduler(kubeconfig, tmp_path / "scheduler.log")
    try:
        async with ApiClient(server=apiserver) as client:
            await client.create("nodes", make_node("n1"))
            await client.create("pods", make_pod("web", cpu="100m"))
            for _ in range(200):
                pod = await client.get("pods", "web", namespace="default")
                if pod["spec"].get("nodeName"):
                    break
                await asyncio.sleep(0.05)
            assert pod["spec"].get("nodeName") == "n1"
            lease = await client.get("leases", "aiokube-scheduler", namespace="kube-system")
            assert lease["spec"]["holderIdentity"].endswith(f"_{process.pid}")
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
