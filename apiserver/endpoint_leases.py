"""Kubernetes' lease endpoint reconciler: the `kubernetes` Service lists only API servers that are alive.

Every API server keeps a coordination.k8s.io Lease `kube-system/apiserver-<hash of its address:port>`
(labelled `apiserver.kubernetes.io/identity=kube-apiserver`, as Kubernetes' API server identity leases are, with
its advertised address in an annotation) renewed every third of `--endpoint-lease-duration`. Each renewal also
rewrites the `kubernetes` Endpoints/EndpointSlice to the addresses of the servers whose lease is fresh
(renewTime + leaseDurationSeconds in the future), so a server that died leaves them within one lease duration;
one that shuts down cleanly deletes its lease and removes its address at once (kube-apiserver's RemoveEndpoints).

Freshness compares the lease's renewTime with this server's wall clock, so the control-plane machines' clocks
must agree to well within a lease duration (NTP), as for leader election.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from apiserver.handlers.common import from_kv
from apiserver.handlers.create import WriteOptions
from apiserver.handlers.state import ServerState
from apiserver.handlers.update import create_or_update
from apiserver.kubernetes_service import advertise_address, set_endpoint_addresses
from apiserver.storage.interface import StorageError

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
IDENTITY_VALUE = "kube-apiserver"
ADDRESS_ANNOTATION = "aiokube.io/advertise-address"
_MANAGER = WriteOptions(manager="kube-apiserver")


def lease_name(address: str, port: int) -> str:
    """One name per serving endpoint: a restarted server takes its old lease over."""
    return "apiserver-" + hashlib.sha256(f"{address}:{port}".encode()).hexdigest()[:16]


def micro_time(seconds: float) -> str:
    """metav1.MicroTime, as Leases carry it."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_expiry(lease: Obj) -> float:
    """When the lease runs out (epoch seconds); 0 for one without a renewTime or duration."""
    spec = lease.get("spec") or {}
    try:
        renewed = datetime.fromisoformat(str(spec["renewTime"]).replace("Z", "+00:00")).timestamp()
        return renewed + float(spec["leaseDurationSeconds"])
    except (KeyError, ValueError, TypeError):
        return 0.0


class EndpointLeaseReconciler:
    """Renews this server's lease and keeps the `kubernetes` endpoints to the servers with fresh leases."""

    def __init__(self, state: ServerState, *, clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self._clock = clock
        self.address = advertise_address(state.config)
        self.port = state.config.port
        self.duration = state.config.endpoint_lease_duration
        self.name = lease_name(self.address, self.port)
        self._handle = state.registry.handle("leases")

    async def run(self) -> None:
        """Reconcile every third of the lease duration until cancelled; then withdraw this server."""
        try:
            while True:
                try:
                    await self.reconcile()
                except (ApiError, StorageError, OSError) as error:  # etcd failing over: try again next round
                    log.warning("kubernetes endpoints: reconcile failed: %s", error)
                await asyncio.sleep(self.duration / 3)
        except asyncio.CancelledError:
            with contextlib.suppress(ApiError, StorageError, OSError, TimeoutError):
                await asyncio.wait_for(self.withdraw(), timeout=3)  # etcd may be gone too
            raise

    async def reconcile(self) -> list[str]:
        """Renew the lease, then list exactly the live servers; returns their addresses."""
        await self._renew()
        live = await self.live_addresses()
        await set_endpoint_addresses(self._state, sorted({*live, self.address}), self.port)
        return live

    async def live_addresses(self, *, without_self: bool = False) -> list[str]:
        now = self._clock()
        listed = await self._handle.storage.list(self._handle.prefix(NAMESPACE))
        live: set[str] = set()
        for kv in listed.items:
            lease = from_kv(kv)
            metadata = lease.get("metadata") or {}
            if (metadata.get("labels") or {}).get(IDENTITY_LABEL) != IDENTITY_VALUE:
                continue
            if without_self and metadata.get("name") == self.name:
                continue
            address = (metadata.get("annotations") or {}).get(ADDRESS_ANNOTATION)
            if address and lease_expiry(lease) > now:
                live.add(address)
        return sorted(live)

    async def withdraw(self) -> None:
        """A clean shutdown: delete this server's lease and list the others only."""
        key = self._handle.key(NAMESPACE, self.name)
        with contextlib.suppress(StorageError):
            await self._handle.storage.delete(key)
        others = await self.live_addresses(without_self=True)
        if others:  # the last server leaves its address rather than an empty Service
            await set_endpoint_addresses(self._state, others, self.port)
        log.info("kubernetes endpoints: withdrew %s", self.address)

    async def _renew(self) -> None:
        now = self._clock()

        def renewed(stored: Obj) -> Obj:
            lease = self._lease(now, acquired=None)
            lease["metadata"] = {**stored["metadata"], **lease["metadata"]}
            lease["spec"]["acquireTime"] = (stored.get("spec") or {}).get("acquireTime") or micro_time(now)
            return lease

        if not await create_or_update(self._state, self._handle, NAMESPACE, self.name,
                                      create=lambda: self._lease(now, acquired=now), update=renewed,
                                      opts=_MANAGER, attempts=4):
            raise ApiError(409, f"could not renew lease {NAMESPACE}/{self.name}: it kept changing", "Conflict")

    def _lease(self, now: float, *, acquired: float | None) -> Obj:
        spec: Obj = {"holderIdentity": f"{self.name}_{socket.gethostname()}",
                     "leaseDurationSeconds": max(1, math.ceil(self.duration)), "renewTime": micro_time(now)}
        if acquired is not None:
            spec["acquireTime"] = micro_time(acquired)
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": NAMESPACE,
                             "labels": {IDENTITY_LABEL: IDENTITY_VALUE,
                                        "kubernetes.io/hostname": socket.gethostname()[:63]},
                             "annotations": {ADDRESS_ANNOTATION: self.address}},
                "spec": spec}
