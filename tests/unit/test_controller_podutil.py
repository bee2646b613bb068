"""Pod helpers: active/ready/available and the order in which a ReplicaSet deletes pods; expectations."""

from __future__ import annotations

from typing import Any

from controllers.expectations import Expectations
from controllers.podutil import is_active, is_available, pods_to_delete


def pod(name: str, *, node: str = "", phase: str = "Running", ready_at: str | None = None,
        created: str = "2024-01-01T00:00:00Z", restarts: int = 0, deleting: bool = False) -> dict[str, Any]:
    conditions = []
    if ready_at:
        conditions.append({"type": "Ready", "status": "True", "lastTransitionTime": ready_at})
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"restartCount": restarts}]}}


def names(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_active_excludes_finished_and_deleting() -> None:
    assert is_active(pod("a"))
    assert not is_active(pod("b", phase="Succeeded"))
    assert not is_active(pod("c", phase="Failed"))
    assert not is_active(pod("d", deleting=True))


def test_available_needs_min_ready_seconds() -> None:
    p = pod("a", ready_at="2024-01-01T00:00:00Z")
    t0 = 1704067200.0
    assert is_available(p, 0, t0)
    assert not is_available(p, 10, t0 + 5)
    assert is_available(p, 10, t0 + 10)
    assert not is_available(pod("b"), 0, t0)


def test_deletion_order() -> None:
    pods = [
        pod("ready-old", node="n1", ready_at="2024-01-01T00:00:00Z", created="2024-01-01T00:00:00Z"),
        pod("unscheduled", phase="Pending"),
        pod("pending", node="n2", phase="Pending"),
        pod("running-notready", node="n3"),
        pod("ready-new", node="n4", ready_at="2024-01-02T00:00:00Z", created="2024-01-02T00:00:00Z"),
    ]
    assert names(pods_to_delete(pods, 5)) == ["unscheduled", "pending", "running-notready", "ready-new",
                                              "ready-old"]
    assert names(pods_to_delete(pods, 2)) == ["unscheduled", "pending"]


def test_doubled_up_pods_go_first_then_newer_then_more_restarts() -> None:
    t = "2024-01-01T00:00:00Z"
    pods = [
        pod("alone", node="n1", ready_at=t),
        pod("twin-a", node="n2", ready_at=t),
        pod("twin-b", node="n2", ready_at=t, restarts=3),
    ]
    assert names(pods_to_delete(pods, 3)) == ["twin-b", "twin-a", "alone"]
    newer = [pod("old", node="n1", ready_at=t, created=t),
             pod("new", node="n2", ready_at=t, created="2024-02-01T00:00:00Z")]
    assert names(pods_to_delete(newer, 1)) == ["new"]


def test_expectations() -> None:
    now = [0.0]
    exp = Expectations(clock=lambda: now[0], timeout=300)
    assert exp.satisfied("ns/rs")
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")
    exp.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/rs", "ns/a")
    exp.deletion_observed("ns/rs", "ns/a")  # seen twice (update with deletionTimestamp, then delete)
    assert exp.pending("ns/rs") == (0, 1) and not exp.satisfied("ns/rs")
    now[0] = 301.0
    assert exp.satisfied("ns/rs")  # a lost event must not wedge the controller forever


def test_logarithmic_buckets_pick_among_similarly_young_pods_by_uid() -> None:
    now = 1704067200.0 + 1000  # 2024-01-01T00:16:40Z
    # ready for 100 s and 110 s share the bucket floor(log2(age ns)) = 36; 900 s is bucket 39.
    young_a = pod("young-a", node="n1", ready_at="2024-01-01T00:15:00Z")
    young_b = pod("young-b", node="n2", ready_at="2024-01-01T00:14:50Z")
    old = pod("old", node="n3", ready_at="2024-01-01T00:01:40Z")
    young_a["metadata"]["uid"], young_b["metadata"]["uid"], old["metadata"]["uid"] = "u-2", "u-1", "u-0"
    pods = [old, young_a, young_b]
    # Without a clock: strictly the most recently ready first. With one: same bucket → lower uid first.
    assert names(pods_to_delete(pods, 3)) == ["young-a", "young-b", "old"]
    assert names(pods_to_delete(pods, 3, now=now)) == ["young-b", "young-a", "old"]


def test_pod_deletion_cost_goes_before_rank_and_age() -> None:
    t = "2024-01-01T00:00:00Z"
    cheap = pod("cheap", node="n1", ready_at=t, created=t)
    cheap["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": "-5"}
    twins = [pod("twin-a", node="n2", ready_at=t), pod("twin-b", node="n2", ready_at=t)]
    assert names(pods_to_delete([*twins, cheap], 1, now=1704067300.0)) == ["cheap"]
