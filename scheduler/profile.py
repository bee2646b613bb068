"""The default profile: which plugins run, in which order, with which score weights (kube-scheduler 1.32's)."""

from __future__ import annotations

from scheduler.cache import SchedulerCache
from scheduler.framework import Plugin, PluginSet
from scheduler.plugins import (
    balanced_allocation,
    inter_pod_affinity,
    node_affinity,
    node_name,
    node_ports,
    node_unschedulable,
    resources_fit,
    taint_toleration,
    topology_spread,
)

DEFAULT_WEIGHTS = {
    taint_toleration.NAME: 3,
    node_affinity.NAME: 2,
    inter_pod_affinity.NAME: 2,
    topology_spread.NAME: 2,
    resources_fit.NAME: 1,
    balanced_allocation.NAME: 1,
}


def default_plugins(cache: SchedulerCache, weights: dict[str, int] | None = None) -> PluginSet:
    """Filters run in this order; the first one to reject a node is the reason reported for it."""
    plugins: list[Plugin] = [
        node_unschedulable.new(),
        node_name.new(),
        taint_toleration.new(),
        node_affinity.new(),
        node_ports.new(),
        resources_fit.new(),
        topology_spread.new(),
        inter_pod_affinity.new(cache),
        balanced_allocation.new(),
    ]
    return PluginSet(plugins=plugins, weights={**DEFAULT_WEIGHTS, **(weights or {})})
