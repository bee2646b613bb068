"""Restart back-off: 10 s doubling to the cap, held from the last exit, reset after 2 x cap of quiet."""

from __future__ import annotations

from kubelet.backoff import Backoff


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delay_doubles_up_to_the_cap() -> None:
    clock = FakeClock()
    b = Backoff(10, 300, clock=clock)
    delays = [b.next("k", clock.now) for _ in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]


def test_in_backoff_counts_from_the_event_time() -> None:
    clock = FakeClock()
    b = Backoff(10, 300, clock=clock)
    assert not b.in_backoff_since("k", clock.now)  # no failure recorded yet: restart at once
    b.next("k", clock.now)
    clock.now += 9
    assert b.in_backoff_since("k", 1000.0)
    assert b.remaining("k", 1000.0) == 1
    clock.now += 1.5
    assert not b.in_backoff_since("k", 1000.0)


def test_entry_resets_after_long_quiet_period() -> None:
    clock = FakeClock()
    b = Backoff(10, 300, clock=clock)
    for _ in range(4):
        b.next("k", clock.now)
    assert b.get("k") == 80
    clock.now += 601  # ran fine for over 10 minutes (2 x the 5 minute cap)
    assert b.next("k", clock.now) == 10


def test_image_backoff_counts_from_the_last_failure() -> None:
    clock = FakeClock()
    b = Backoff(1, 10, clock=clock)
    b.next("img")
    assert b.in_backoff_since_update("img")
    clock.now += 1.01
    assert not b.in_backoff_since_update("img")
    b.next("img")
    clock.now += 1.5
    assert b.in_backoff_since_update("img")  # second failure: 2 s


def test_gc_and_reset_forget_entries() -> None:
    clock = FakeClock()
    b = Backoff(10, 300, clock=clock)
    b.next("a", clock.now)
    b.next("b", clock.now)
    b.reset("a")
    assert b.get("a") == 0
    clock.now += 1000
    b.gc()
    assert b.get("b") == 0
