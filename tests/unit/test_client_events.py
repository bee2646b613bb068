"""EventRecorder: core/v1 Event shape, aggregation of repeats within 10 minutes, never raising."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from aiokube.api.resources import lookup
from aiokube.client import ApiClient, EventRecorder, RetryPolicy
from aiokube.client.fake_api import FakeApiServer
from aiokube.client.testing import FakeClock

POD: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "prod", "uid": "u-1", "resourceVersion": "42"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "u-n1"}}


def setup() -> tuple[FakeApiServer, FakeClock, EventRecorder]:
    api, clock = FakeApiServer(), FakeClock()
    client = ApiClient("http://fake", transport=api.transport(), retry=RetryPolicy(max_attempts=1))
    return api, clock, EventRecorder(client, "replicaset-controller", host="host-a", clock=clock)


def events(api: FakeApiServer) -> list[dict]:
    return [o for (g, p, _, _), o in api.objects.items() if p == "events"]


async def test_event_shape() -> None:
    api, _, recorder = setup()
    await recorder.event(POD, "Normal", "Scheduled", "Assigned prod/web-1 to n1")
    (event,) = events(api)
    assert event["metadata"]["namespace"] == "prod"
    assert event["metadata"]["name"].startswith("web-1.")
    assert event["involvedObject"] == {"kind": "Pod", "apiVersion": "v1", "name": "web-1", "namespace": "prod",
                                       "uid": "u-1", "resourceVersion": "42"}
    assert (event["type"], event["reason"], event["message"]) == ("Normal", "Scheduled", "Assigned prod/web-1 to n1")
    assert event["source"] == {"component": "replicaset-controller", "host": "host-a"}
    assert event["reportingComponent"] == "replicaset-controller"
    assert event["count"] == 1
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-01-01T00:00:00Z"
    assert event["eventTime"] == "2026-01-01T00:00:00.000000Z"


async def test_repeats_are_aggregated_within_ten_minutes() -> None:
    api, clock, recorder = setup()
    await recorder.event(POD, "Warning", "BackOff", "Back-off restarting failed container")
    clock.time += 60
    await recorder.event(POD, "Warning", "BackOff", "Back-off restarting failed container")
    clock.time += 60
    await recorder.event(POD, "Warning", "BackOff", "Back-off restarting failed container")
    (event,) = events(api)
    assert event["count"] == 3
    assert event["firstTimestamp"] == "2026-01-01T00:00:00Z"
    assert event["lastTimestamp"] == "2026-01-01T00:02:00Z"
    await recorder.event(POD, "Warning", "BackOff", "a different message")
    assert len(events(api)) == 2
    clock.time += 601  # quiet for more than 10 minutes: a new Event starts
    await recorder.event(POD, "Warning", "BackOff", "Back-off restarting failed container")
    assert sorted(e["count"] for e in events(api)) == [1, 1, 3]


async def test_cluster_scoped_objects_get_events_in_default() -> None:
    api, _, recorder = setup()
    await recorder.event(NODE, "Normal", "NodeReady", "Node n1 status is now: NodeReady")
    (event,) = events(api)
    assert event["metadata"]["namespace"] == "default"
    assert "namespace" not in event["involvedObject"]


async def test_failures_are_logged_not_raised_and_a_deleted_event_is_recreated() -> None:
    api, clock, recorder = setup()
    api.fail_next("POST", 500)
    await recorder.event(POD, "Normal", "Created", "Created container web")  # swallowed
    assert events(api) == []
    await recorder.event(POD, "Normal", "Created", "Created container web")
    (event,) = events(api)
    api.remove(lookup("events"), "prod", event["metadata"]["name"])
    clock.time += 1
    await recorder.event(POD, "Normal", "Created", "Created container web")  # patch 404 → create anew
    (event,) = events(api)
    assert event["count"] == 1


async def test_concurrent_recording_is_bounded() -> None:
    api = FakeApiServer()
    in_flight = peak = 0

    async def slow_handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.002)
        in_flight -= 1
        return await api.handle(request)

    client = ApiClient("http://fake", transport=httpx.MockTransport(slow_handler))
    recorder = EventRecorder(client, "kubelet", max_concurrent_writes=3)
    await asyncio.gather(*(recorder.event({**POD, "metadata": {**POD["metadata"], "name": f"p{i}"}},
                                          "Normal", "Pulled", "image pulled") for i in range(30)))
    assert len(events(api)) == 30
    assert peak == 3
