"""Controller-manager throughput: many Deployments created at once, with the real API server and etcd in the loop.

    .venv/bin/python bench/bench_controllers.py                          # 100 Deployments x 10 replicas
    .venv/bin/python bench/bench_controllers.py --deployments 20 --replicas 5

Starts a private etcd, `python -m apiserver` and `python -m controllers` (all controllers, leader election on),
waits until the controllers run (the namespace's default ServiceAccount appears), then creates every
Deployment at once (32 concurrent creates) and measures, from the first create:
- the time until every pod object exists (a watch counts them);
- the time until every Deployment's and ReplicaSet's status is current (observedGeneration = generation and
  status.replicas = spec.replicas; pods never become Ready here: no node agent runs);
- the controller-manager's CPU seconds over that span and its peak RSS (VmHWM), both from /proc.
Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokube.api.errors import ApiError
from aiokube.client import ApiClient
from bench.support import (
    create_all,
    etcd_and_workdir,
    proc_cpu_seconds,
    proc_peak_rss_mb,
    spawn,
    start_apiserver,
    stop,
)
from controllers.testing import write_kubeconfig

NAMESPACE = "bench"
POLL_INTERVAL = 0.2


def deployment(i: int, replicas: int) -> dict[str, Any]:
    name = f"web-{i:04d}"
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}


async def controllers_running(client: ApiClient, manager: subprocess.Popen[bytes]) -> None:
    """The serviceaccount controller gives the new namespace its `default` account once it runs (and leads)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if manager.poll() is not None:
            raise RuntimeError("the controller-manager exited")
        try:
            await client.get("serviceaccounts", "default", namespace=NAMESPACE)
            return
        except ApiError as err:
            if err.code != 404:
                raise
        await asyncio.sleep(0.1)
    raise RuntimeError("the controller-manager did not start")


async def all_pods_exist(client: ApiClient, total: int, rv: str) -> float:
    seen: set[str] = set()
    while True:
        async for event in client.watch("pods", namespace=NAMESPACE, resource_version=rv, allow_bookmarks=True):
            obj = event["object"]
            rv = obj["metadata"].get("resourceVersion", rv)
            if event["type"] == "ADDED":
                seen.add(obj["metadata"]["name"])
                if len(seen) >= total:
                    return time.monotonic()


def current(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    return (status.get("observedGeneration") == obj["metadata"].get("generation")
            and status.get("replicas", 0) == obj["spec"].get("replicas"))


async def all_status_current(client: ApiClient, deployments: int) -> float:
    while True:
        ds = (await client.list("deployments", namespace=NAMESPACE))["items"]
        rss = (await client.list("replicasets", namespace=NAMESPACE))["items"]
        if (len(ds) == deployments and len(rss) == deployments and all(map(current, ds))
                and all(map(current, rss))):
            return time.monotonic()
        await asyncio.sleep(POLL_INTERVAL)


async def run(deployments: int, replicas: int, workdir: Path, etcd_url: str, manager_args: list[str]) -> str:
    apiserver, url = start_apiserver(etcd_url, f"/bench-controllers-{os.getpid()}", log=workdir / "apiserver.log")
    manager: subprocess.Popen[bytes] | None = None
    try:
        kubeconfig = write_kubeconfig(str(workdir / "kubeconfig"), url)
        # BENCH_PROFILE=/tmp/cm.prof in the environment runs the controller-manager under cProfile.
        profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
        manager = spawn([sys.executable, *profile, "-m", "controllers", "--kubeconfig", kubeconfig, *manager_args],
                        log=workdir / "controller-manager.log")
        async with ApiClient(server=url) as client:
            await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": NAMESPACE}})
            await controllers_running(client, manager)
            rv = (await client.list("pods", namespace=NAMESPACE))["metadata"]["resourceVersion"]
            cpu_before, api_cpu_before = proc_cpu_seconds(manager.pid), proc_cpu_seconds(apiserver.pid)
            started = time.monotonic()
            pods_task = asyncio.create_task(all_pods_exist(client, deployments * replicas, rv))
            await create_all(client, "deployments", [deployment(i, replicas) for i in range(deployments)])
            created = time.monotonic()
            pods_done = await pods_task
            status_done = await all_status_current(client, deployments)
        cpu = proc_cpu_seconds(manager.pid) - cpu_before
        api_cpu = proc_cpu_seconds(apiserver.pid) - api_cpu_before
        rss = proc_peak_rss_mb(manager.pid)
        return (f"{deployments} Deployments x {replicas} replicas ({deployments * replicas} pods) on "
                f"{os.cpu_count()} cores\n"
                f"  all Deployments created          {created - started:7.2f} s\n"
                f"  every pod object exists           {pods_done - started:7.2f} s "
                f"({deployments * replicas / (pods_done - started):.0f} pods/s)\n"
                f"  every Deployment/RS status current {status_done - started:6.2f} s\n"
                f"  controller-manager CPU            {cpu:7.2f} s   peak RSS {rss:.1f} MiB\n"
                f"  API server CPU (same span)        {api_cpu:7.2f} s")
    finally:
        stop(manager)
        stop(apiserver)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--manager-args", default="",
                        help='extra controller-manager flags, e.g. "--concurrent-syncs 5"')
    args = parser.parse_args()
    with etcd_and_workdir("bench-controllers-") as (etcd, workdir):
        print(await run(args.deployments, args.replicas, workdir, etcd.url, args.manager_args.split()), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
