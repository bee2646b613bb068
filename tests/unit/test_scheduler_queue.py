"""SchedulingQueue: priority order, backoff with an injected clock, moves on cluster events."""

from __future__ import annotations

from scheduler.podinfo import pod_info
from scheduler.queue import QueuedPod, SchedulingQueue
from tests.unit.scheduler_fixtures import make_pod


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def one_pod_popped(**options: float) -> tuple[Clock, SchedulingQueue, QueuedPod]:
    """A queue (on a fake clock) whose only pod, default/p, has just been popped for a scheduling cycle."""
    clock = Clock()
    queue = SchedulingQueue(clock, **options)
    queue.add(pod_info(make_pod("p")))
    qp = queue.pop_nowait()
    assert qp is not None
    return clock, queue, qp


def test_priority_then_age() -> None:
    clock = Clock()
    queue = SchedulingQueue(clock)
    for name, priority in (("low-old", 0), ("high", 100), ("low-new", 0)):
        queue.add(pod_info(make_pod(name, priority=priority)))
        clock.now += 1
    order = [queue.pop_nowait() for _ in range(3)]
    assert [qp.info.name for qp in order if qp] == ["high", "low-old", "low-new"]
    assert queue.pop_nowait() is None


def test_backoff_doubles_and_caps() -> None:
    clock = Clock()
    queue = SchedulingQueue(clock, initial_backoff=1.0, max_backoff=10.0)
    queue.add(pod_info(make_pod("p")))
    waits = []
    for _ in range(6):
        qp = queue.pop_nowait()
        assert qp is not None
        queue.add_backoff(qp)
        assert queue.where("default/p") == "backoff"
        waits.append(qp.backoff_until - clock.now)
        clock.now += waits[-1] - 0.01
        assert queue.pop_nowait() is None  # still backing off
        clock.now += 0.1
    assert waits == [1, 2, 4, 8, 10, 10]


def test_unschedulable_waits_for_an_event() -> None:
    clock, queue, qp = one_pod_popped()
    queue.add_unschedulable(qp)
    clock.now += 60
    assert queue.pop_nowait() is None and queue.where("default/p") == "unschedulable"
    assert queue.move_all(lambda info: info.name == "other") == 0
    assert queue.move_all() == 1
    again = queue.pop_nowait()
    assert again is not None and again.info.name == "p" and again.attempts == 2


def test_event_during_backoff_moves_to_backoff_not_active() -> None:
    clock, queue, qp = one_pod_popped()
    queue.add_unschedulable(qp)
    queue.move_all()
    assert queue.where("default/p") == "backoff"
    clock.now += 1.5
    assert queue.pop_nowait() is not None


def test_move_request_during_cycle_is_not_lost() -> None:
    _clock, queue, qp = one_pod_popped()
    queue.move_all()  # e.g. a node was added while the pod was being scheduled
    queue.add_unschedulable(qp)
    assert queue.where("default/p") == "backoff"


def test_unschedulable_timeout_flushes() -> None:
    clock, queue, qp = one_pod_popped(unschedulable_timeout=300)
    queue.add_unschedulable(qp)
    clock.now += 301
    assert queue.pop_nowait() is not None


def test_update_and_delete() -> None:
    clock = Clock()
    queue = SchedulingQueue(clock)
    queue.add(pod_info(make_pod("a")))
    queue.add(pod_info(make_pod("b")))
    queue.update(pod_info(make_pod("b", priority=10)))
    queue.delete("default/a")
    first = queue.pop_nowait()
    assert first is not None and first.info.name == "b"
    assert queue.pop_nowait() is None
