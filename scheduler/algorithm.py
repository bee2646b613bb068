"""The synchronous part of a scheduling cycle: filter the nodes, score a sample of the feasible ones, pick one.

Fast path (plain pods of a ReplicaSet): static filters come from the per-signature cache, resource fit is
one vectorised comparison over the node table, plugins with nothing to check are skipped in PreFilter, and
the scores are array arithmetic. Per-node Python work only happens for plugins the pod really needs
(host ports, inter-pod affinity, topology spread) and, when nothing fits, for the diagnosis that explains why.

Like kube-scheduler, the search stops after `feasible_nodes_to_find` feasible nodes (adaptive
percentageOfNodesToScore: 50% of a 100-node cluster, falling to 5%, never below 100 nodes), starting where
the previous cycle stopped so all nodes get their turn.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from scheduler.cache import NodeInfo, SchedulerCache
from scheduler.framework import (
    SUCCESS,
    BatchFilterPlugin,
    BatchScorePlugin,
    CycleState,
    FilterPlugin,
    PluginSet,
    PreFilterPlugin,
    PreScorePlugin,
    ScorePlugin,
    StaticFilterPlugin,
    StaticScorePlugin,
    Status,
)
from scheduler.podinfo import PodInfo
from scheduler.static_cache import StaticCache

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5
NO_NODES_AVAILABLE = "no nodes available to schedule pods"


def feasible_nodes_to_find(num_nodes: int, percentage: int = 0) -> int:
    """How many feasible nodes to collect before scoring (Kubernetes' numFeasibleNodesToFind)."""
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_nodes
    if percentage <= 0:
        percentage = max(50 - num_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE)
    if percentage >= 100:
        return num_nodes
    return max(num_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


@dataclass
class FitError(Exception):
    """No node fits. `message()` is the text of the PodScheduled condition and FailedScheduling event."""

    pod: PodInfo
    num_all_nodes: int
    statuses: dict[str, Status] = field(default_factory=dict)  # node name -> its first failing filter
    pre_filter_message: str = ""
    post_filter_message: str = ""

    def message(self) -> str:
        if self.num_all_nodes == 0 and not self.statuses:
            return NO_NODES_AVAILABLE
        text = f"0/{self.num_all_nodes} nodes are available:"
        if self.pre_filter_message:
            text += f" {self.pre_filter_message}."
        else:
            histogram: Counter[str] = Counter()
            for status in self.statuses.values():
                histogram.update(status.reasons)
            # Kubernetes sorts the "<count> <reason>" strings themselves, so "1 node(s)…" precedes "2 Insufficient…".
            parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
            if parts:
                text += f" {', '.join(parts)}."
        if self.post_filter_message:
            post = self.post_filter_message
            text += f" {post}" if post.endswith(".") else f" {post}."
        return text

    def __str__(self) -> str:
        return self.message()


class Algorithm:
    def __init__(self, cache: SchedulerCache, plugins: PluginSet, *, percentage_of_nodes_to_score: int = 0,
                 rng: random.Random | None = None) -> None:
        self.cache = cache
        self.plugins = plugins
        self.percentage = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self.pre_filters: list[PreFilterPlugin] = plugins.of(PreFilterPlugin)
        self.filters: list[FilterPlugin] = plugins.of(FilterPlugin)
        self.batch_filters: list[BatchFilterPlugin] = plugins.of(BatchFilterPlugin)
        static_filters: list[StaticFilterPlugin] = plugins.of(StaticFilterPlugin)
        self.static_scorers: list[StaticScorePlugin] = plugins.of(StaticScorePlugin)
        self.batch_scorers: list[BatchScorePlugin] = plugins.of(BatchScorePlugin)
        self.pre_scorers: list[PreScorePlugin] = plugins.of(PreScorePlugin)
        self.scorers: list[ScorePlugin] = plugins.of(ScorePlugin)
        fast = {p.name for p in static_filters} | {p.name for p in self.batch_filters}
        self.node_filters = [f for f in self.filters if f.name not in fast]
        self.static = StaticCache(cache, static_filters, self.static_scorers)
        self.next_start_row = 0

    # ---- per-node slow path (diagnosis, preemption, nominated node) -------------------------------------
    def run_filters(self, state: CycleState, pod: PodInfo, node: NodeInfo, skipped: set[str]) -> Status:
        """Every filter in order; the first rejection wins (as in Kubernetes without runAllFilters)."""
        for plugin in self.filters:
            if plugin.name in skipped:
                continue
            status = plugin.filter(state, pod, node)
            if not status.is_success:
                return status
        return SUCCESS

    def pre_filter(self, state: CycleState, pod: PodInfo) -> tuple[set[str], Status]:
        skipped: set[str] = set()
        nodes = self.cache.nodes.values()
        for plugin in self.pre_filters:
            status = plugin.pre_filter(state, pod, nodes)
            if status.is_skip:
                skipped.add(plugin.name)
            elif not status.is_success:
                return skipped, status
        return skipped, SUCCESS

    def diagnose(self, state: CycleState, pod: PodInfo, skipped: set[str]) -> dict[str, Status]:
        return {info.name: self.run_filters(state, pod, info, skipped) for info in self.cache.live_nodes()}

    # ---- the cycle ----------------------------------------------------------------------------------------
    def schedule(self, state: CycleState, pod: PodInfo, nominated_node: str = "") -> str:
        """The chosen node's name; raises FitError when none fits."""
        cache, table = self.cache, self.cache.table
        num_nodes = cache.node_count
        if num_nodes == 0:
            raise FitError(pod, 0)
        skipped, status = self.pre_filter(state, pod)
        if not status.is_success:
            if status.code.name == "ERROR":
                raise RuntimeError(status.message)
            statuses = {info.name: status for info in cache.live_nodes()}
            raise FitError(pod, num_nodes, statuses, pre_filter_message=status.message)
        node_filters = [f for f in self.node_filters if f.name not in skipped]

        if nominated_node:
            info = cache.nodes.get(nominated_node)
            if info is not None and info.node is not None and self.run_filters(state, pod, info, skipped).is_success:
                return nominated_node

        n = table.size
        entry = self.static.lookup(pod)
        mask = entry.feasible[:n] & table.alive[:n]
        for batch in self.batch_filters:
            if batch.name not in skipped:
                mask &= batch.filter_batch(state, pod, table)
        rows = np.flatnonzero(mask)
        start = self.next_start_row % max(n, 1)
        split = int(np.searchsorted(rows, start))
        ordered = np.concatenate([rows[split:], rows[:split]])
        wanted = feasible_nodes_to_find(num_nodes, self.percentage)
        if node_filters:
            feasible_list: list[int] = []
            for row in ordered.tolist():
                info = cache.node_by_row(row)
                if all(f.filter(state, pod, info).is_success for f in node_filters):
                    feasible_list.append(row)
                    if len(feasible_list) >= wanted:
                        break
            feasible = np.asarray(feasible_list, dtype=np.int64)
        else:
            feasible = ordered[:wanted]
        if len(feasible) == 0:
            raise FitError(pod, num_nodes, self.diagnose(state, pod, skipped))
        # Resume after the last node examined next time (all of them if the search was not cut short).
        if len(feasible) >= wanted:
            self.next_start_row = (start + (int(feasible[-1]) - start) % n + 1) % n
        if len(feasible) == 1:
            return table.names[int(feasible[0])]
        return table.names[int(feasible[self._select(state, pod, feasible, entry.raw_scores)])]

    def _select(self, state: CycleState, pod: PodInfo, rows: np.ndarray,
                static_raw: dict[str, np.ndarray]) -> int:
        weights = self.plugins.weights
        total = np.zeros(len(rows), dtype=np.float64)
        for static in self.static_scorers:
            total += weights.get(static.name, 1) * static.normalize_batch(static_raw[static.name][rows])
        for batch in self.batch_scorers:
            total += weights.get(batch.name, 1) * batch.score_batch(pod, self.cache.table, rows)
        all_nodes = self.cache.nodes.values()
        active = [p for p in self.pre_scorers if not p.pre_score(state, pod, all_nodes).is_skip]
        active_names = {p.name for p in active}
        for scorer in self.scorers:
            if scorer.name not in active_names:
                continue
            raw = [scorer.score(state, pod, info) for info in self._infos(rows)]
            total += weights.get(scorer.name, 1) * np.asarray(scorer.normalize(state, pod, raw), dtype=np.float64)
        ties = np.flatnonzero(total == total.max())
        # Equal scores are broken at random so identical pods do not all chase one node.
        return int(ties[self.rng.randrange(len(ties))]) if len(ties) > 1 else int(ties[0])

    def _infos(self, rows: np.ndarray) -> Iterable[NodeInfo]:
        return [self.cache.node_by_row(row) for row in rows.tolist()]
