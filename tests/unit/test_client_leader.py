"""LeaderElector on the fake API with a fake clock: acquire, renew, stand by, release, take over on expiry,
step down when renewals fail past the deadline."""

from __future__ import annotations

import asyncio

from aiokube.api.resources import lookup
from aiokube.client import ApiClient, LeaderElector, RetryPolicy, parse_time
from aiokube.client.fake_api import FakeApiServer
from aiokube.client.testing import FakeClock, settle

LEASES = lookup("leases")


class Candidate:
    def __init__(self, api: FakeApiServer, clock: FakeClock, identity: str) -> None:
        client = ApiClient("http://fake", transport=api.transport(), retry=RetryPolicy(max_attempts=1))
        self.elector = LeaderElector(client, namespace="kube-system", name="ctrl", identity=identity,
                                     lease_duration=15.0, renew_deadline=10.0, retry_period=2.0, clock=clock)
        self.leading = False
        self.work_cancelled = False
        self.stopped = 0
        self.task: asyncio.Task[None] | None = None

    async def lead(self) -> None:
        self.leading = True
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.work_cancelled = True
            raise
        finally:
            self.leading = False

    def on_stopped(self) -> None:
        self.stopped += 1

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run(self.lead, self.on_stopped))

    async def cancel(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def lease(api: FakeApiServer) -> dict:
    return api.objects[("coordination.k8s.io", "leases", "kube-system", "ctrl")]


async def test_acquire_renew_and_release_on_cancel() -> None:
    api, clock = FakeApiServer(), FakeClock()
    a = Candidate(api, clock, "a")
    a.start()
    await settle()
    assert a.leading and a.elector.is_leader
    spec = lease(api)["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["renewTime"] == "2026-01-01T00:00:00.000000Z"  # MicroTime
    await clock.advance(2.5)
    spec = lease(api)["spec"]
    assert parse_time(spec["renewTime"]) > parse_time(spec["acquireTime"])
    assert spec["renewTime"] == "2026-01-01T00:00:02.000000Z"
    await a.cancel()
    assert a.work_cancelled and a.stopped == 1 and not a.elector.is_leader
    spec = lease(api)["spec"]
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"]) == ("", 1)


async def test_follower_waits_while_renewed_and_takes_over_at_once_after_release() -> None:
    api, clock = FakeApiServer(), FakeClock()
    a, b = Candidate(api, clock, "a"), Candidate(api, clock, "b")
    a.start()
    await settle()
    b.start()
    for _ in range(20):  # 40 s: far beyond the lease duration, but "a" keeps renewing
        await clock.advance(2.0)
    assert a.leading and not b.leading
    await a.cancel()
    await clock.advance(2.4)  # one follower retry period (with up to 20% jitter)
    assert b.leading
    spec = lease(api)["spec"]
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1
    await b.cancel()


async def test_expired_lease_is_taken_over_and_the_old_leader_steps_down() -> None:
    api, clock = FakeApiServer(), FakeClock()
    a, b = Candidate(api, clock, "a"), Candidate(api, clock, "b")
    a.start()
    await settle()
    b.start()
    await settle()
    # From now on every lease write of "a" fails (e.g. it is partitioned from the API server).
    api.fail_next("PUT", 503, times=1000)
    await clock.advance(10.0)  # renew_deadline passes without a successful renewal
    assert a.stopped == 1 and a.work_cancelled and not a.leading
    assert not b.leading  # the lease has not expired yet: b must not overlap with a
    api.clear_failures()
    for _ in range(5):
        await clock.advance(2.4)
    assert b.leading
    assert lease(api)["spec"]["holderIdentity"] == "b"
    assert a.task is not None and a.task.done()  # run() returns after losing the lease
    await b.cancel()


async def test_lease_taken_by_another_holder_stops_the_leader() -> None:
    api, clock = FakeApiServer(), FakeClock()
    a = Candidate(api, clock, "a")
    a.start()
    await settle()
    stolen = lease(api)
    stolen["spec"] = {**stolen["spec"], "holderIdentity": "intruder"}
    api.put(LEASES, stolen)
    await clock.advance(2.0)
    assert a.stopped == 1 and not a.leading
    assert lease(api)["spec"]["holderIdentity"] == "intruder"  # not released: it is not ours
