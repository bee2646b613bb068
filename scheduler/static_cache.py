"""Per-signature results of the static filters and static scores, one numpy row per node.

Static plugins (NodeUnschedulable, NodeName, TaintToleration, NodeAffinity) depend only on the node object and
the pod's signature, so for 1,000 pods of one ReplicaSet on 1,000 nodes they run 1,000 times, not a million.
An entry remembers the node table's `static_version` of each row it computed; on lookup only rows whose
version moved (node labels/taints changed, node added or deleted) are recomputed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scheduler.cache import SchedulerCache
from scheduler.framework import StaticFilterPlugin, StaticScorePlugin
from scheduler.podinfo import PodInfo

# Enough for every distinct workload of a large cluster; least recently used signatures are dropped.
MAX_SIGNATURES = 512


@dataclass
class StaticEntry:
    versions: np.ndarray
    feasible: np.ndarray  # bool per row
    raw_scores: dict[str, np.ndarray]  # plugin name -> raw static score per row


class StaticCache:
    def __init__(self, cache: SchedulerCache, filters: Sequence[StaticFilterPlugin],
                 scorers: Sequence[StaticScorePlugin]) -> None:
        self.cache = cache
        self.filters = list(filters)
        self.scorers = list(scorers)
        self._entries: OrderedDict[str, StaticEntry] = OrderedDict()
        self.rows_computed = 0  # for tests and the benchmark: how much static work really ran

    def _compute_rows(self, entry: StaticEntry, pod: PodInfo, rows: np.ndarray) -> None:
        table = self.cache.table
        for row in rows.tolist():
            entry.versions[row] = table.static_version[row]
            info = self.cache.nodes.get(table.names[row]) if row < len(table.names) else None
            node = info.node if info is not None else None
            if node is None or not table.alive[row]:
                entry.feasible[row] = False
                continue
            entry.feasible[row] = all(f.filter_static(pod, node).is_success for f in self.filters)
            for scorer in self.scorers:
                entry.raw_scores[scorer.name][row] = scorer.score_static(pod, node)
        self.rows_computed += len(rows)

    def lookup(self, pod: PodInfo) -> StaticEntry:
        table = self.cache.table
        n = table.size
        entry = self._entries.get(pod.signature)
        if entry is None:
            entry = StaticEntry(versions=np.full(n, -1, dtype=np.int64), feasible=np.zeros(n, dtype=bool),
                                raw_scores={s.name: np.zeros(n, dtype=np.float64) for s in self.scorers})
            self._entries[pod.signature] = entry
            if len(self._entries) > MAX_SIGNATURES:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(pod.signature)
        if len(entry.versions) < n:
            grow = n - len(entry.versions)
            entry.versions = np.concatenate([entry.versions, np.full(grow, -1, dtype=np.int64)])
            entry.feasible = np.concatenate([entry.feasible, np.zeros(grow, dtype=bool)])
            for name, scores in entry.raw_scores.items():
                entry.raw_scores[name] = np.concatenate([scores, np.zeros(grow)])
        stale = np.nonzero(entry.versions[:n] != table.static_version[:n])[0]
        if len(stale):
            self._compute_rows(entry, pod, stale)
        return entry
