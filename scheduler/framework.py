"""The scheduling framework: the typed `Status` every plugin returns and one small Protocol per extension point.

A pod's scheduling cycle runs PreFilter → Filter (per node) → PostFilter (only if no node fits) → PreScore →
Score + NormalizeScore → Reserve, then an asynchronous binding cycle runs Bind. Plugins share per-cycle data
through `CycleState`, a plain dict keyed by plugin name.

Status codes and what the scheduler does with them:

- SUCCESS: the node passes / the step succeeded.
- UNSCHEDULABLE: the node does not fit *now*, but could after a change the scheduler can make (preemption
  may evict pods to make room) or the cluster makes (pods deleted). Preemption considers such nodes.
- UNSCHEDULABLE_AND_UNRESOLVABLE: the node cannot fit the pod whatever is evicted (taints, selectors, node
  name); preemption skips it ("Preemption is not helpful for scheduling"). The pod waits for a cluster event.
- ERROR: an internal failure; the pod goes to the backoff queue and is retried, no preemption is attempted.
- SKIP: returned by PreFilter/PreScore when the plugin has nothing to check for this pod; its Filter/Score are
  then not called (e.g. NodePorts for a pod without host ports) — the main reason plain pods are cheap.

Hot-path extensions (the reason this scheduler is fast in Python): a plugin may also implement
`StaticFilterPlugin` — a check that depends only on the node object and the pod's *scheduling signature* —
which the scheduler evaluates once per (signature, node version) and caches as a boolean mask; and
`BatchScorePlugin`, which scores every candidate node at once from the node table's numpy arrays.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aiokube.api.types import Obj

if TYPE_CHECKING:
    import numpy as np

    from scheduler.cache import NodeInfo, NodeTable
    from scheduler.podinfo import PodInfo

MAX_NODE_SCORE = 100


class Code(enum.Enum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    SKIP = 4


@dataclass(frozen=True)
class Status:
    """A plugin's verdict: a code plus the human reasons shown in FailedScheduling messages."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def is_success(self) -> bool:
        return self.code is Code.SUCCESS

    @property
    def is_skip(self) -> bool:
        return self.code is Code.SKIP

    @property
    def is_rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    @classmethod
    def unschedulable(cls, *reasons: str, plugin: str = "") -> Status:
        return cls(Code.UNSCHEDULABLE, reasons, plugin)

    @classmethod
    def unresolvable(cls, *reasons: str, plugin: str = "") -> Status:
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons, plugin)

    @classmethod
    def error(cls, reason: str, plugin: str = "") -> Status:
        return cls(Code.ERROR, (reason,), plugin)


SUCCESS = Status()
SKIP = Status(Code.SKIP)


class CycleState(dict[str, Any]):
    """Data one plugin computes in PreFilter/PreScore and reads back in Filter/Score, for one pod's cycle."""

    def clone(self) -> CycleState:
        return CycleState(self)


@dataclass
class NodeScore:
    name: str
    score: int


@runtime_checkable
class Plugin(Protocol):
    name: str


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]) -> Status: ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status: ...


@runtime_checkable
class StaticFilterPlugin(Plugin, Protocol):
    """A filter that looks only at the node object and the signature fields of the pod (cacheable)."""

    def filter_static(self, pod: PodInfo, node: Obj) -> Status: ...


@runtime_checkable
class BatchFilterPlugin(Plugin, Protocol):
    """A filter evaluated for every row of the node table at once; returns a bool mask of fitting rows."""

    def filter_batch(self, state: CycleState, pod: PodInfo, table: NodeTable) -> np.ndarray: ...


@runtime_checkable
class PostFilterPlugin(Plugin, Protocol):
    async def post_filter(self, state: CycleState, pod: PodInfo,
                          statuses: dict[str, Status]) -> tuple[str | None, Status]:
        """Try to make the pod schedulable later (preemption); returns the nominated node name, if any."""
        ...


@runtime_checkable
class PreScorePlugin(Plugin, Protocol):
    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]) -> Status: ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int: ...

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> list[int]:
        """Map raw scores onto 0..MAX_NODE_SCORE in place of the raw ones (identity if already normalised)."""
        ...


@runtime_checkable
class StaticScorePlugin(Plugin, Protocol):
    """A raw score depending only on the node object and the pod's signature (cached like static filters)."""

    def score_static(self, pod: PodInfo, node: Obj) -> int: ...

    def normalize_batch(self, raw: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class BatchScorePlugin(Plugin, Protocol):
    """Scores a whole array of candidate rows of the node table at once (already normalised to 0..100)."""

    def score_batch(self, pod: PodInfo, table: NodeTable, rows: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class ReservePlugin(Plugin, Protocol):
    def reserve(self, state: CycleState, pod: PodInfo, node_name: str) -> Status: ...

    def unreserve(self, state: CycleState, pod: PodInfo, node_name: str) -> None: ...


@runtime_checkable
class BindPlugin(Plugin, Protocol):
    async def bind(self, pod: Obj, node_name: str) -> Status: ...


def default_normalize(scores: list[int], *, reverse: bool = False) -> list[int]:
    """Kubernetes' DefaultNormalizeScore: scale so the highest is 100; `reverse` makes low raw scores win."""
    highest = max(scores, default=0)
    if highest == 0:
        return [MAX_NODE_SCORE if reverse else 0 for _ in scores]
    out = [s * MAX_NODE_SCORE // highest for s in scores]
    return [MAX_NODE_SCORE - s for s in out] if reverse else out


@dataclass
class PluginSet:
    """The enabled plugins of a profile, split per extension point, plus the score weights."""

    plugins: list[Plugin]
    weights: dict[str, int] = field(default_factory=dict)

    def of(self, kind: type) -> list[Any]:
        return [p for p in self.plugins if isinstance(p, kind)]
