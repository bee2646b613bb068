"""Leader election on a coordination.k8s.io/v1 Lease (client-go's leaderelection with a LeaseLock).

Only one holder at a time: every write carries the Lease's resourceVersion, so of two candidates racing for
the same Lease one gets 409 and stays a follower. A candidate takes the Lease when it is free (no holder) or
expired. Expiry is judged by this process's own monotonic clock: the Lease "expires" when its record has not
changed for `lease_duration` seconds since we first saw it, so clock skew between machines does not matter.
The leader renews every `retry_period`; if no renewal succeeds for `renew_deadline` seconds it stops leading
(its work is cancelled) before anyone else can take over, because renew_deadline < lease_duration. On clean
shutdown it releases the Lease (empty holder, 1 s duration) so a successor takes over at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.types import Obj
from aiokube.client.api_client import ApiClient
from aiokube.client.clock import REAL_CLOCK, Clock
from aiokube.client.timefmt import format_micro_time

log = logging.getLogger(__name__)

# client-go's JitterFactor: followers retry at retry_period * (1 + up to 20%) so they do not collide.
JITTER_FACTOR = 1.2
RELEASE_ATTEMPTS = 5  # conflicts come only from our own cancelled renewal landing late; a few re-reads suffice


class LeaderElector:
    def __init__(self, client: ApiClient, *, namespace: str = "kube-system", name: str, identity: str,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0,
                 release_on_cancel: bool = True, clock: Clock = REAL_CLOCK) -> None:
        if not lease_duration > renew_deadline > retry_period * JITTER_FACTOR:
            raise ValueError("need lease_duration > renew_deadline > retry_period * 1.2")
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        self._clock = clock
        self._observed_spec: Obj | None = None
        self._observed_at = 0.0
        self._lease: Obj | None = None
        self.is_leader = False

    async def run(self, on_started_leading: Callable[[], Awaitable[Any]],
                  on_stopped_leading: Callable[[], Any] | None = None) -> None:
        """Campaign until elected, lead until the lease is lost or the work ends; returns then.

        Cancelling run() cancels the leader's work, releases the Lease and re-raises the cancellation.
        """
        await self._acquire()
        self.is_leader = True
        log.info("%s: became leader of lease %s/%s", self.identity, self.namespace, self.name)
        leading = asyncio.ensure_future(on_started_leading())
        renewing = asyncio.ensure_future(self._renew_until_lost())
        try:
            await asyncio.wait({leading, renewing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Reached on loss, on the work ending, and on our own cancellation alike.
            for task in (leading, renewing):
                task.cancel()
            await asyncio.gather(leading, renewing, return_exceptions=True)
            lost = renewing.done() and not renewing.cancelled() and renewing.exception() is None
            self.is_leader = False
            if not lost and self.release_on_cancel:
                await self._release()
            if on_stopped_leading is not None:
                try:
                    on_stopped_leading()
                except Exception:
                    log.exception("%s: on_stopped_leading failed", self.identity)
        failure = leading.exception() if leading.done() and not leading.cancelled() else None
        if failure is not None:
            raise failure

    # -- campaign and renewal ---------------------------------------------------------------------------

    async def _acquire(self) -> None:
        while not await self._try_acquire_or_renew():
            await self._clock.sleep(self.retry_period * random.uniform(1.0, JITTER_FACTOR))

    async def _renew_until_lost(self) -> None:
        """Return when a renewal has not succeeded for renew_deadline seconds."""
        last_success = self._clock.monotonic()
        while True:
            await self._clock.sleep(self.retry_period)
            remaining = self.renew_deadline - (self._clock.monotonic() - last_success)
            try:
                renewed = await asyncio.wait_for(self._try_acquire_or_renew(), timeout=max(remaining, 0.001))
            except TimeoutError:
                renewed = False
            if renewed:
                last_success = self._clock.monotonic()
            elif self._clock.monotonic() - last_success >= self.renew_deadline or self._taken_by_other():
                log.warning("%s: lost lease %s/%s", self.identity, self.namespace, self.name)
                return

    def _taken_by_other(self) -> bool:
        holder = (self._observed_spec or {}).get("holderIdentity")
        return bool(holder) and holder != self.identity

    async def _try_acquire_or_renew(self) -> bool:
        now = format_micro_time(self._clock.now())
        try:
            lease = await self.client.get("leases", self.name, self.namespace)
        except ApiError as exc:
            if exc.code != 404:
                log.warning("%s: reading lease failed: %s", self.identity, exc.message)
                return False
            return await self._create(now)
        except Exception as exc:
            log.warning("%s: reading lease failed: %r", self.identity, exc)
            return False
        spec: Obj = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and not self._observed_expired(spec):
            return False
        new_spec = dict(spec)
        new_spec.update(holderIdentity=self.identity, leaseDurationSeconds=_whole_seconds(self.lease_duration),
                        renewTime=now)
        if holder != self.identity:
            new_spec["acquireTime"] = now
            # As client-go counts: every change of holder is a transition, also taking over a released Lease.
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        lease = {**lease, "spec": new_spec}
        try:
            updated = await self.client.update("leases", lease, self.namespace)
        except ApiError as exc:
            log.info("%s: updating lease failed: %s", self.identity, exc.message)
            return False
        except Exception as exc:
            log.warning("%s: updating lease failed: %r", self.identity, exc)
            return False
        self._lease = updated
        self._observe(updated.get("spec") or {})
        return True

    async def _create(self, now: str) -> bool:
        body: Obj = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": _whole_seconds(self.lease_duration),
                     "acquireTime": now, "renewTime": now, "leaseTransitions": 0},
        }
        try:
            created = await self.client.create("leases", body, self.namespace)
        except Exception as exc:
            log.info("%s: creating lease failed: %r", self.identity, exc)
            return False
        self._lease = created
        self._observe(created.get("spec") or {})
        return True

    def _observe(self, spec: Obj) -> None:
        if spec != self._observed_spec:
            self._observed_spec = dict(spec)
            self._observed_at = self._clock.monotonic()

    def _observed_expired(self, spec: Obj) -> bool:
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        return self._observed_at + duration <= self._clock.monotonic()

    async def _release(self) -> None:
        """Give the Lease up so a successor need not wait for it to expire. A renewal cancelled in flight may
        still land on the server and make our read stale (409): read again and retry a few times."""
        if self._lease is None:
            return
        for _attempt in range(RELEASE_ATTEMPTS):
            try:
                lease = await self.client.get("leases", self.name, self.namespace)
                spec: Obj = lease.get("spec") or {}
                if spec.get("holderIdentity") != self.identity:
                    return
                now = format_micro_time(self._clock.now())
                lease["spec"] = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": now}
                await self.client.update("leases", lease, self.namespace)
                log.info("%s: released lease %s/%s", self.identity, self.namespace, self.name)
                return
            except ApiError as exc:
                if exc.code != 409:
                    log.warning("%s: releasing lease failed: %r", self.identity, exc)
                    return
            except Exception as exc:
                log.warning("%s: releasing lease failed: %r", self.identity, exc)
                return
        log.warning("%s: releasing lease gave up after %d conflicts", self.identity, RELEASE_ATTEMPTS)


def _whole_seconds(seconds: float) -> int:
    return max(1, round(seconds))
