"""The Node object of this agent: registration, status (capacity, conditions, addresses, nodeInfo, images),
and the heartbeat Lease in kube-node-lease.

The Lease is renewed every `lease_interval` (10 s, as the kubelet); the Node status is posted when it
changed or every `status_report_interval`, so an idle node costs one small write per ten seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import platform
import socket
from dataclasses import dataclass
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.client.timefmt import format_micro_time
from kubelet.cri import CriError, RuntimeClient

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.32.0"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
MAX_PODS = 110
# Eviction-style thresholds, the kubelet's hard-eviction defaults.
MEMORY_AVAILABLE_MIN = 100 * 1024 * 1024
DISK_AVAILABLE_MIN_FRACTION = 0.10
PIDS_AVAILABLE_MIN_FRACTION = 0.05


@dataclass
class NodeIdentity:
    name: str
    node_ip: str
    pod_cidr: str | None
    root_dir: str
    server_port: int


def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            out[key] = int(parts[0]) * 1024
    return out


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip('"')
    return "Linux"


def capacity(root_dir: str) -> dict[str, str]:
    st = os.statvfs(root_dir)
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{meminfo().get('MemTotal', 0) // 1024}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": f"{st.f_blocks * st.f_frsize // 1024}Ki",
    }


def allocatable(cap: dict[str, str]) -> dict[str, str]:
    alloc = dict(cap)
    mem_ki = int(cap["memory"].removesuffix("Ki")) - MEMORY_AVAILABLE_MIN // 1024
    alloc["memory"] = f"{max(mem_ki, 0)}Ki"
    return alloc


def pressure(root_dir: str) -> dict[str, bool]:
    mem = meminfo()
    st = os.statvfs(root_dir)
    pid_max = int(_read("/proc/sys/kernel/pid_max", "32768") or 32768)
    pids = sum(1 for d in os.listdir("/proc") if d.isdigit())
    return {
        "MemoryPressure": mem.get("MemAvailable", MEMORY_AVAILABLE_MIN) < MEMORY_AVAILABLE_MIN,
        "DiskPressure": st.f_blocks > 0 and st.f_bavail / st.f_blocks < DISK_AVAILABLE_MIN_FRACTION,
        "PIDPressure": pids > pid_max * (1 - PIDS_AVAILABLE_MIN_FRACTION),
    }


_CONDITION_TEXT = {
    "MemoryPressure": (("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
                       ("KubeletHasSufficientMemory", "kubelet has sufficient memory available")),
    "DiskPressure": (("KubeletHasDiskPressure", "kubelet has disk pressure"),
                     ("KubeletHasNoDiskPressure", "kubelet has no disk pressure")),
    "PIDPressure": (("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
                    ("KubeletHasSufficientPID", "kubelet has sufficient PID available")),
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeStatusReporter:
    def __init__(self, api: Any, runtime: RuntimeClient, identity: NodeIdentity, *,
                 lease_interval: float = 10.0, status_interval: float = 10.0,
                 status_report_interval: float = 60.0) -> None:
        self.api = api
        self.runtime = runtime
        self.identity = identity
        self.lease_interval = lease_interval
        self.status_interval = status_interval
        self.status_report_interval = status_report_interval
        self.node_uid = ""
        self._last_status: Obj | None = None
        self._transitions: dict[tuple[str, str], str] = {}  # (condition, status) -> since when
        self._last_report = 0.0

    # --- registration -------------------------------------------------------------------------------------
    async def register(self) -> Obj:
        ident = self.identity
        node: Obj = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": ident.name, "labels": {
                "kubernetes.io/hostname": ident.name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": _arch(), "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": _arch(),
            }},
            "spec": {"podCIDR": ident.pod_cidr, "podCIDRs": [ident.pod_cidr]} if ident.pod_cidr else {},
        }
        try:
            created: Obj = await self.api.create("nodes", node)
            log.info("registered node %s", ident.name)
            self.node_uid = created["metadata"]["uid"]
            return created
        except ApiError as e:
            if e.code != 409:
                raise
        existing: Obj = await self.api.get("nodes", ident.name)
        self.node_uid = existing["metadata"]["uid"]
        if ident.pod_cidr and not existing.get("spec", {}).get("podCIDR"):
            existing = await self.api.patch("nodes", ident.name, {"spec": node["spec"]})
        return existing

    # --- status -------------------------------------------------------------------------------------------
    async def build_status(self) -> Obj:
        ident = self.identity
        cap = capacity(ident.root_dir)
        version = await self.runtime.version()
        runtime_ready, runtime_message = await self._runtime_ready()
        flags = pressure(ident.root_dir)
        conditions = []
        for kind, flag in flags.items():
            reason, message = _CONDITION_TEXT[kind][0 if flag else 1]
            conditions.append({"type": kind, "status": "True" if flag else "False", "reason": reason,
                               "message": message})
        conditions.append({"type": "Ready", "status": "True" if runtime_ready else "False",
                           "reason": "KubeletReady" if runtime_ready else "KubeletNotReady",
                           "message": "kubelet is posting ready status" if runtime_ready else runtime_message})
        images = []
        try:
            for image in await self.runtime.list_images():
                names = list(image.repo_digests) + list(image.repo_tags)
                if names:
                    images.append({"names": names, "sizeBytes": int(image.size)})
        except CriError as e:
            log.warning("listing images failed: %s", e)
        uname = platform.uname()
        return {
            "capacity": cap,
            "allocatable": allocatable(cap),
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": ident.node_ip},
                          {"type": "Hostname", "address": ident.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": ident.server_port}},
            "nodeInfo": {
                "machineID": _read("/etc/machine-id"),
                "systemUUID": _read("/sys/class/dmi/id/product_uuid") or _read("/etc/machine-id"),
                "bootID": _read("/proc/sys/kernel/random/boot_id"),
                "kernelVersion": uname.release,
                "osImage": os_image(),
                "containerRuntimeVersion": f"{version.runtime_name}://{version.runtime_version}",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
            "images": images,
        }

    async def _runtime_ready(self) -> tuple[bool, str]:
        try:
            status = (await self.runtime.status()).status
        except CriError as e:
            return False, f"container runtime is down: {e}"
        not_ready = [f"{c.type}=false reason:{c.reason} message:{c.message}" for c in status.conditions
                     if not c.status]
        return (not not_ready), "; ".join(not_ready)

    async def post_status(self, *, force: bool = False) -> bool:
        """Patch nodes/status when it changed (ignoring heartbeat times) or the report interval passed."""
        status = await self.build_status()
        loop = asyncio.get_running_loop()
        if not force and status == self._last_status and loop.time() - self._last_report < self.status_report_interval:
            return False
        now = _now()
        body = {**status, "conditions": [
            {**c, "lastHeartbeatTime": now,
             "lastTransitionTime": self._transitions.get((c["type"], c["status"]), now)}
            for c in status["conditions"]]}
        await self.api.patch("nodes", self.identity.name, {"status": body}, subresource="status")
        self._transitions = {(c["type"], c["status"]): c["lastTransitionTime"] for c in body["conditions"]}
        self._last_status = status
        self._last_report = loop.time()
        return True

    # --- lease --------------------------------------------------------------------------------------------
    async def renew_lease(self) -> None:
        name = self.identity.name
        now = format_micro_time(dt.datetime.now(dt.UTC))
        spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": now}
        try:
            lease: Obj = await self.api.get("leases", name, namespace=LEASE_NAMESPACE)
        except ApiError as e:
            if e.code != 404:
                raise
            body: Obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                         "spec": {**spec, "acquireTime": now}}
            if self.node_uid:
                body["metadata"]["ownerReferences"] = [
                    {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.node_uid}]
            await self._create_lease(body)
            return
        lease["spec"] = {**lease.get("spec", {}), **spec}
        await self.api.update("leases", lease, namespace=LEASE_NAMESPACE)

    async def _create_lease(self, body: Obj) -> None:
        try:
            await self.api.create("leases", body, namespace=LEASE_NAMESPACE)
        except ApiError as e:
            if e.code != 404:
                raise
            # The lease namespace is missing (a bare API server): create it, then retry once.
            try:
                await self.api.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": LEASE_NAMESPACE}})
            except ApiError as ns_error:
                if ns_error.code != 409:
                    raise
            await self.api.create("leases", body, namespace=LEASE_NAMESPACE)

    # --- loops --------------------------------------------------------------------------------------------
    async def run_lease(self) -> None:
        while True:
            try:
                await self.renew_lease()
            except (ApiError, OSError) as e:
                log.warning("lease renewal failed: %s", e)
            await asyncio.sleep(self.lease_interval)

    async def run_status(self) -> None:
        while True:
            try:
                await self.post_status()
            except (ApiError, CriError, OSError) as e:
                log.warning("node status update failed: %s", e)
            await asyncio.sleep(self.status_interval)


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def default_node_ip() -> str:
    """The address the default route leaves from (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"
