"""Deployment arithmetic: fenceposts rounding, new-RS size, proportional scaling, hashing, revisions, status."""

from __future__ import annotations

from typing import Any

import pytest

from controllers import deployment_util as du


def deployment(replicas: int = 10, surge: Any = "25%", unavailable: Any = "25%", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
                 **spec},
        "status": {},
    }


def rs(name: str, replicas: int, available: int = 0, created: str = "2024-01-01T00:00:00Z",
       annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": name, "creationTimestamp": created,
                         "annotations": annotations or {}},
            "spec": {"replicas": replicas}, "status": {"replicas": replicas, "availableReplicas": available}}


@pytest.mark.parametrize(("surge", "unavailable", "replicas", "expected"), [
    ("25%", "25%", 10, (3, 2)),      # surge rounds up (2.5 -> 3), unavailable rounds down (2.5 -> 2)
    ("25%", "25%", 1, (1, 0)),       # 0.25 -> 1 surge, 0 unavailable
    (0, 0, 5, (0, 1)),               # both zero would never progress: unavailable becomes 1
    (2, 1, 5, (2, 1)),
    ("50%", "0%", 3, (2, 0)),
    ("10", "1", 3, (10, 1)),         # int strings are ints
])
def test_fenceposts(surge: Any, unavailable: Any, replicas: int, expected: tuple[int, int]) -> None:
    assert du.resolve_fenceposts(deployment(replicas, surge, unavailable)) == expected


def test_max_unavailable_is_capped_by_replicas_and_zero_for_recreate() -> None:
    assert du.max_unavailable(deployment(2, 0, 5)) == 2
    recreate = deployment(3)
    recreate["spec"]["strategy"] = {"type": "Recreate"}
    assert du.max_unavailable(recreate) == 0 and du.max_surge(recreate) == 0


def test_new_rs_new_replicas_respects_surge() -> None:
    d = deployment(10, 3, 2)
    old, new = rs("old", 10), rs("new", 0)
    assert du.new_rs_new_replicas(d, [old, new], new) == 3       # 10 + 3 allowed in total
    new["spec"]["replicas"] = 3
    assert du.new_rs_new_replicas(d, [old, new], new) == 3       # already at 13
    old["spec"]["replicas"] = 5
    assert du.new_rs_new_replicas(d, [old, new], new) == 3       # 5 old pods still being deleted: wait
    old["status"]["replicas"] = 5
    assert du.new_rs_new_replicas(d, [old, new], new) == 8       # 13 - 5
    old["spec"]["replicas"] = old["status"]["replicas"] = 0
    assert du.new_rs_new_replicas(d, [old, new], new) == 10      # never beyond replicas


def test_scale_down_budget_counts_unavailable_new_pods() -> None:
    d = deployment(10, 3, 2)
    old, new = rs("old", 10, 10), rs("new", 3, 0)
    # 13 total - 8 min available - 3 unavailable new pods = 2 may go
    assert du.rolling_scale_down_budget(d, [old, new], new) == 2


def test_proportional_scaling_mid_rollout() -> None:
    # k8s docs example: 10 replicas, surge 3, rollout in progress 8 old + 5 new; scale to 15.
    ann = {du.MAX_REPLICAS: "13"}
    old = rs("old", 8, created="2024-01-01T00:00:00Z", annotations=ann)
    new = rs("new", 5, created="2024-01-02T00:00:00Z", annotations=ann)
    d = deployment(15, 3, 2)  # allowed 15 + 3 = 18; 5 to add, shared by size
    sizes = du.proportional_sizes(d, [old, new])
    assert sum(sizes.values()) == 18
    assert sizes == {"old": 11, "new": 7}  # 8*18/13 = 11.08 -> 11 ; 5*18/13 = 6.92 -> 7


def test_proportional_scaling_down_to_zero() -> None:
    d = deployment(0)
    sizes = du.proportional_sizes(d, [rs("a", 3), rs("b", 2)])
    assert sizes == {"a": 0, "b": 0}


def test_hash_is_stable_and_depends_on_template_and_collisions() -> None:
    t = deployment()["spec"]["template"]
    h = du.compute_hash(t, None)
    assert h == du.compute_hash(dict(reversed(list(t.items()))), None)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10
    assert h != du.compute_hash(t, 1)
    changed = {**t, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    assert h != du.compute_hash(changed, None)


def test_equal_ignore_hash() -> None:
    t = deployment()["spec"]["template"]
    assert du.equal_ignore_hash(du.template_with_hash(t, "abc"), t)
    assert not du.equal_ignore_hash(t, {**t, "spec": {"containers": []}})


def test_revision_annotations_and_history() -> None:
    d = deployment(3)
    d["metadata"]["annotations"] = {"team": "a", du.LAST_APPLIED: "{}", du.REVISION: "7"}
    new = rs("new", 0)
    assert du.set_new_rs_annotations(d, new, 1, exists=False)
    ann = new["metadata"]["annotations"]
    assert ann == {"team": "a", du.REVISION: "1", du.DESIRED_REPLICAS: "3", du.MAX_REPLICAS: "4"}
    assert du.set_new_rs_annotations(d, new, 4, exists=True)  # rollback: the old RS becomes newest
    assert ann[du.REVISION] == "4" and ann[du.REVISION_HISTORY] == "1"
    assert not du.set_new_rs_annotations(d, new, 4, exists=True)


def test_status_and_conditions() -> None:
    d = deployment(4, 1, 1)
    new = rs("new", 4, 3)
    new["status"]["readyReplicas"] = 3
    status = du.calculate_status(d, [new], new, now=1_700_000_000)
    assert status["replicas"] == 4 and status["updatedReplicas"] == 4 and status["unavailableReplicas"] == 1
    avail = du.get_condition(status, "Available")
    assert avail is not None and avail["status"] == "True" and avail["reason"] == du.MIN_AVAILABLE
    assert not du.deployment_complete(d, status)
    status["availableReplicas"] = 4
    assert du.deployment_complete(d, status)


def test_timed_out() -> None:
    d = deployment(1, progressDeadlineSeconds=10)
    status = {"conditions": [du.new_condition("Progressing", "True", du.RS_UPDATED, "x", 1000.0)]}
    assert not du.deployment_timed_out(d, status, 1005.0)
    assert du.deployment_timed_out(d, status, 1011.0)
    status["conditions"][0]["reason"] = du.NEW_RS_AVAILABLE
    assert not du.deployment_timed_out(d, status, 5000.0)


def test_set_condition_keeps_transition_time_for_same_status() -> None:
    status: dict[str, Any] = {}
    du.set_condition(status, du.new_condition("Progressing", "True", du.NEW_RS_CREATED, "a", 1000.0))
    du.set_condition(status, du.new_condition("Progressing", "True", du.RS_UPDATED, "b", 2000.0))
    cond = du.get_condition(status, "Progressing")
    assert cond is not None and cond["reason"] == du.RS_UPDATED
    assert cond["lastTransitionTime"] == "1970-01-01T00:16:40Z"


def test_available_for_scale_down_never_exceeds_spec() -> None:
    # The ReplicaSet controller reported the 10 pods it saw before deleting 2 (generation observed): only 8 stay.
    old = rs("old", 8, 10)
    old["status"]["replicas"] = 10
    assert du.available_for_scale_down(old) == 8
    assert du.available_for_scale_down(rs("new", 5, 3)) == 3
    assert du.pods_at_most(old) == 10  # and those 10 still count against the surge until they are gone
