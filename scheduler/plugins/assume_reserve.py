"""The default Reserve plugin: count the pod against its chosen node in the cache before binding confirms it.

Reserve is where a pod's resources become "taken" for the next scheduling cycles; Unreserve (run when a later
Reserve plugin or the binding cycle fails) gives them back, so the pod can be retried and others may fit.
"""

from __future__ import annotations

from scheduler.cache import SchedulerCache
from scheduler.framework import SUCCESS, CycleState, Status
from scheduler.podinfo import PodInfo

NAME = "AssumePod"


class AssumeReserve:
    name = NAME

    def __init__(self, cache: SchedulerCache) -> None:
        self.cache = cache

    def reserve(self, state: CycleState, pod: PodInfo, node_name: str) -> Status:
        self.cache.assume(pod, node_name)
        return SUCCESS

    def unreserve(self, state: CycleState, pod: PodInfo, node_name: str) -> None:
        self.cache.forget(pod.key)


def new(cache: SchedulerCache) -> AssumeReserve:
    return AssumeReserve(cache)
