"""DefaultPreemption (PostFilter): when no node fits a pod, find the node where evicting lower-priority pods
makes it fit, preferring the cheapest eviction.

For each node that failed with a resolvable status (Unschedulable, not UnschedulableAndUnresolvable): remove
every lower-priority pod, check the pod fits, then add victims back from the most important down while the pod
still fits; the rest are the victims. Among candidates, pick the one whose most important victim has the
lowest priority, then the lowest sum of victim priorities, then the fewest victims. The plugin decides; the
`evict` callback (the scheduler) nominates the node and deletes the victims. PodDisruptionBudgets are not
considered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from scheduler.algorithm import FitError
from scheduler.cache import NodeInfo, SchedulerCache
from scheduler.framework import CycleState, Status
from scheduler.podinfo import PodInfo

NAME = "DefaultPreemption"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
POLICY_NEVER = "not eligible due to preemptionPolicy=Never."
TERMINATING_ON_NOMINATED = "not eligible due to a terminating pod on the nominated node."

# Checks a pod against one node with every filter: (state, pod, node) -> Status.
NodeChecker = Callable[[CycleState, PodInfo, NodeInfo], Status]
Evict = Callable[[PodInfo, str, list[PodInfo]], Awaitable[None]]


@dataclass
class Candidate:
    node: str
    victims: list[PodInfo]

    def cost(self) -> tuple[int, int, int]:
        return (max(v.priority for v in self.victims), sum(v.priority for v in self.victims), len(self.victims))


def _clone_without(info: NodeInfo, removed: set[str]) -> NodeInfo:
    pods = {k: p for k, p in info.pods.items() if k not in removed}
    ports: dict[tuple[str, str, int], int] = {}
    for pod in pods.values():
        for port in pod.ports:
            ports[port] = ports.get(port, 0) + 1
    return replace(info, pods=pods, used_ports=ports)


class DefaultPreemption:
    name = NAME

    def __init__(self, cache: SchedulerCache, check: NodeChecker, evict: Evict) -> None:
        self.cache = cache
        self.check = check
        self.evict = evict

    def eligible(self, pod: PodInfo) -> str | None:
        """None if the pod may preempt, else the reason it may not."""
        if pod.spec.get("preemptionPolicy") == "Never":
            return POLICY_NEVER
        nominated = (pod.pod.get("status") or {}).get("nominatedNodeName")
        info = self.cache.nodes.get(nominated) if nominated else None
        if info is not None and any(p.is_terminating and p.priority < pod.priority for p in info.pods.values()):
            return TERMINATING_ON_NOMINATED
        return None

    def select_victims(self, state: CycleState, pod: PodInfo, info: NodeInfo) -> tuple[list[PodInfo], Status]:
        lower = [p for p in info.pods.values() if p.priority < pod.priority and not p.is_terminating]
        if not lower:
            return [], Status.unresolvable(NO_VICTIMS, plugin=NAME)
        removed = {p.key for p in lower}
        status = self.check(state, pod, _clone_without(info, removed))
        if not status.is_success:
            return [], status
        victims = []
        for candidate in sorted(lower, key=lambda p: -p.priority):
            removed.discard(candidate.key)
            if not self.check(state, pod, _clone_without(info, removed)).is_success:
                removed.add(candidate.key)
                victims.append(candidate)
        return victims, Status()

    def find(self, state: CycleState, pod: PodInfo, statuses: dict[str, Status]) -> Candidate | FitError:
        candidates: list[Candidate] = []
        outcome: dict[str, Status] = {}
        for name, status in statuses.items():
            info = self.cache.nodes.get(name)
            if info is None or status.code.name != "UNSCHEDULABLE":
                outcome[name] = Status.unresolvable(NOT_HELPFUL, plugin=NAME)
                continue
            victims, verdict = self.select_victims(state, pod, info)
            if verdict.is_success and victims:
                candidates.append(Candidate(name, victims))
            else:
                outcome[name] = verdict if not verdict.is_success else Status.unresolvable(NO_VICTIMS)
        if not candidates:
            return FitError(pod, len(statuses), outcome)
        return min(candidates, key=Candidate.cost)

    async def post_filter(self, state: CycleState, pod: PodInfo,
                          statuses: dict[str, Status]) -> tuple[str | None, Status]:
        reason = self.eligible(pod)
        if reason is not None:
            return None, Status.unschedulable(f"preemption: {reason}", plugin=NAME)
        found = self.find(state, pod, statuses)
        if isinstance(found, FitError):
            return None, Status.unschedulable(f"preemption: {found.message()}", plugin=NAME)
        await self.evict(pod, found.node, found.victims)
        return found.node, Status()


def new(cache: SchedulerCache, check: NodeChecker, evict: Evict) -> DefaultPreemption:
    return DefaultPreemption(cache, check, evict)
