"""The controller-manager: builds the shared informers and the enabled controllers, runs them under leader election.

Each controller module provides a reconciler class with `informers` (what its workers wait for), `watch(queue)`
(maps informer events to keys) and `reconcile(key)`. The manager builds them all on one `SharedInformers`,
wraps each in a client `Controller` and runs informers and controllers in one TaskGroup. With leader election
on, that TaskGroup runs only while this process holds the Lease kube-system/aiokube-controller-manager; losing
the Lease cancels it (Kubernetes exits then, and so does `python -m controllers`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokube.client import Controller, EventRecorder, LeaderElector
from controllers import events
from controllers.certificates import csr_approving_factory, csr_signing_factory
from controllers.deployment import DeploymentReconciler
from controllers.endpoints import EndpointsReconciler
from controllers.endpointslice import EndpointSliceReconciler
from controllers.garbagecollector import GarbageCollector
from controllers.informers import SharedInformers
from controllers.namespace import NamespaceReconciler
from controllers.nodeipam import NodeIpamReconciler
from controllers.nodelifecycle import NodeLifecycleReconciler
from controllers.replicaset import ReplicaSetReconciler
from controllers.serviceaccount import ServiceAccountReconciler
from controllers.timeutil import Clock, system_clock

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "aiokube-controller-manager"


@dataclass
class ManagerOptions:
    controllers: list[str] | None = None  # None = every controller in CONTROLLERS
    leader_elect: bool = True
    # Kubernetes defaults: a node is unreachable after 40 s without a heartbeat; pods are evicted after their
    # toleration of the unreachable taint (300 s by default, added to every pod by the API server).
    node_monitor_grace_period: float = 40.0
    node_monitor_period: float = 5.0
    pod_eviction_timeout: float = 300.0
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    workers: int = 2
    resync_period: float | None = None
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    # The CA the csrsigning controller signs with (kube-controller-manager's flags of the same names).
    cluster_signing_cert_file: str | None = None
    cluster_signing_key_file: str | None = None
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}_{os.getpid()}")


@dataclass
class BuildContext:
    """What a controller factory gets: the API client, the shared informers, options and the clock."""

    client: Any
    informers: SharedInformers
    options: ManagerOptions
    clock: Clock

    def recorder(self, component: str) -> Any:
        return EventRecorder(self.client, component=component)


Factory = Callable[[BuildContext], Any]


def _replicaset(ctx: BuildContext) -> Any:
    return ReplicaSetReconciler(client=ctx.client, informers=ctx.informers,
                                recorder=ctx.recorder("replicaset-controller"), clock=ctx.clock)


def _deployment(ctx: BuildContext) -> Any:
    return DeploymentReconciler(client=ctx.client, informers=ctx.informers,
                                recorder=ctx.recorder("deployment-controller"), clock=ctx.clock)


def _garbagecollector(ctx: BuildContext) -> Any:
    return GarbageCollector(client=ctx.client, informers=ctx.informers)


def _namespace(ctx: BuildContext) -> Any:
    return NamespaceReconciler(client=ctx.client, informers=ctx.informers, clock=ctx.clock)


def _serviceaccount(ctx: BuildContext) -> Any:
    return ServiceAccountReconciler(client=ctx.client, informers=ctx.informers)


def _endpoints(ctx: BuildContext) -> Any:
    return EndpointsReconciler(client=ctx.client, informers=ctx.informers)


def _endpointslice(ctx: BuildContext) -> Any:
    return EndpointSliceReconciler(client=ctx.client, informers=ctx.informers)


def _nodelifecycle(ctx: BuildContext) -> Any:
    o = ctx.options
    return NodeLifecycleReconciler(client=ctx.client, informers=ctx.informers,
                                   recorder=ctx.recorder("node-controller"), clock=ctx.clock,
                                   grace_period=o.node_monitor_grace_period, monitor_period=o.node_monitor_period,
                                   eviction_timeout=o.pod_eviction_timeout)


def _nodeipam(ctx: BuildContext) -> Any:
    return NodeIpamReconciler(client=ctx.client, informers=ctx.informers, cluster_cidr=ctx.options.cluster_cidr,
                              mask_size=ctx.options.node_cidr_mask_size)


# name -> factory, in the order they are built; `--controllers` picks from these names.
CONTROLLERS: dict[str, Factory] = {
    "replicaset": _replicaset,
    "deployment": _deployment,
    "garbagecollector": _garbagecollector,
    "namespace": _namespace,
    "serviceaccount": _serviceaccount,
    "endpoints": _endpoints,
    "endpointslice": _endpointslice,
    "nodelifecycle": _nodelifecycle,
    "nodeipam": _nodeipam,
    "csrapproving": csr_approving_factory,
    "csrsigning": csr_signing_factory,
}


def register(name: str, factory: Factory) -> None:
    CONTROLLERS[name] = factory


class ControllerManager:
    def __init__(self, client: Any, options: ManagerOptions | None = None, *, clock: Clock = system_clock) -> None:
        self.client = client
        self.options = options or ManagerOptions()
        self.clock = clock
        self.reconcilers: dict[str, Any] = {}
        self.leading = asyncio.Event()

    def enabled(self) -> list[str]:
        wanted = self.options.controllers
        if wanted is None or "*" in wanted:
            return list(CONTROLLERS)
        unknown = [n for n in wanted if n not in CONTROLLERS]
        if unknown:
            raise ValueError(f"unknown controllers: {', '.join(unknown)} (known: {', '.join(CONTROLLERS)})")
        return [n for n in CONTROLLERS if n in wanted]

    async def run_controllers(self) -> None:
        """Build informers and controllers afresh and run them until cancelled."""
        informers = SharedInformers(self.client, resync_period=self.options.resync_period)
        ctx = BuildContext(self.client, informers, self.options, self.clock)
        controllers: list[Controller] = []
        self.reconcilers = {}
        for name in self.enabled():
            reconciler = CONTROLLERS[name](ctx)
            controller = Controller(name, reconciler, workers=self.options.workers, informers=reconciler.informers)
            reconciler.watch(controller.queue)
            self.reconcilers[name] = reconciler
            controllers.append(controller)
        log.info("starting controllers: %s", ", ".join(self.reconcilers))
        self.leading.set()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(informers.run())
                for controller in controllers:
                    group.create_task(controller.run())
                for reconciler in self.reconcilers.values():
                    background = getattr(reconciler, "run_background", None)
                    if background is not None:
                        group.create_task(background())
        finally:
            self.leading.clear()
            await events.drain(within=2.0)  # Events of the last reconciles are written, not dropped

    async def run(self) -> None:
        """Run until cancelled (or, with leader election, until the Lease is lost)."""
        if not self.options.leader_elect:
            await self.run_controllers()
            return
        elector = LeaderElector(self.client, namespace=LEASE_NAMESPACE, name=LEASE_NAME,
                                identity=self.options.identity, lease_duration=self.options.lease_duration,
                                renew_deadline=self.options.renew_deadline, retry_period=self.options.retry_period)
        await elector.run(on_started_leading=self.run_controllers,
                          on_stopped_leading=lambda: log.warning("%s: leader election lost",
                                                                 self.options.identity))
