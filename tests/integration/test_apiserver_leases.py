"""The lease endpoint reconciler (apiserver/endpoint_leases.py): the `kubernetes` Service's Endpoints and
EndpointSlice list only API servers whose kube-system identity Lease is fresh. A killed server (SIGKILL, no
clean shutdown) leaves them within its lease duration; a server that stops cleanly leaves them at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from apiserver.endpoint_leases import ADDRESS_ANNOTATION, IDENTITY_LABEL, lease_expiry, lease_name
from tests.support.apiserver import running_apiserver
from tests.support.etcd import free_port
from tests.support.processes import wait_until_ready

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENDPOINTS = "/api/v1/namespaces/default/endpoints/kubernetes"
SLICE = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
DURATION = 1.5  # seconds: renewed every 0.5 s, so the tests stay short


def listed(api: httpx.Client) -> tuple[list[str], list[str]]:
    endpoints = api.get(ENDPOINTS).json()
    slice_ = api.get(SLICE).json()
    return ([a["ip"] for s in endpoints.get("subsets") or [] for a in s.get("addresses") or []],
            sorted(ip for e in slice_.get("endpoints") or [] for ip in e["addresses"]))


def wait_for(api: httpx.Client, addresses: list[str], timeout: float) -> float:
    """Seconds until both objects list exactly `addresses`."""
    started = time.monotonic()
    while listed(api) != (addresses, addresses):
        assert time.monotonic() - started < timeout, f"still {listed(api)} after {timeout}s, want {addresses}"
        time.sleep(0.1)
    return time.monotonic() - started


@contextmanager
def apiserver_process(etcd_url: str, etcd_prefix: str, advertise: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`python -m apiserver` as a separate process, so the test can kill it like a machine failure."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "apiserver", "--etcd-servers", etcd_url, "--etcd-prefix", etcd_prefix,
         "--port", str(port), "--advertise-address", advertise, "--endpoint-lease-duration", f"{DURATION}s",
         "--log-level", "warning"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}/readyz", "the second API server")
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_a_killed_server_leaves_the_endpoints_within_its_lease_duration(etcd_url: str, etcd_prefix: str) -> None:
    with running_apiserver(etcd_url, etcd_prefix, endpoint_lease_duration=DURATION) as url, \
            httpx.Client(base_url=url, timeout=10) as api:
        with apiserver_process(etcd_url, etcd_prefix, "192.0.2.8") as (second, second_port):
            wait_for(api, ["127.0.0.1", "192.0.2.8"], timeout=5)
            # Each server holds its identity Lease, fresh, naming its address.
            leases = {lease["metadata"]["name"]: lease for lease in
                      api.get(LEASES, params={"labelSelector": f"{IDENTITY_LABEL}=kube-apiserver"}).json()["items"]}
            theirs = leases[lease_name("192.0.2.8", second_port)]
            assert theirs["metadata"]["annotations"][ADDRESS_ANNOTATION] == "192.0.2.8"
            assert theirs["spec"]["leaseDurationSeconds"] == 2  # whole seconds, rounded up
            assert lease_expiry(theirs) > time.time()
            assert {lease["metadata"]["annotations"][ADDRESS_ANNOTATION] for lease in leases.values()} == {
                "127.0.0.1", "192.0.2.8"}
            os.kill(second.pid, signal.SIGKILL)  # no clean shutdown: only the lease running out removes it
            second.wait(10)
            gone_after = wait_for(api, ["127.0.0.1"], timeout=10)
        # Its lease was renewed up to the kill; it lapses within leaseDurationSeconds (2 s), and the survivor
        # notices at its next renewal (every 0.5 s).
        assert 0.5 < gone_after < 2 + 0.5 + 1.0, gone_after
        # The lease itself stays (expired), as a dead server's does in Kubernetes until it is collected.
        assert api.get(f"{LEASES}/{theirs['metadata']['name']}").status_code == 200


def test_a_server_that_stops_cleanly_withdraws_at_once(etcd_url: str, etcd_prefix: str) -> None:
    with running_apiserver(etcd_url, etcd_prefix, endpoint_lease_duration=30.0) as url, \
            httpx.Client(base_url=url, timeout=10) as api:
        with running_apiserver(etcd_url, etcd_prefix, advertise_address="192.0.2.7", endpoint_lease_duration=30.0):
            wait_for(api, ["127.0.0.1", "192.0.2.7"], timeout=5)
        # Stopped: a 30 s lease would keep it listed for 30 s, but the server deleted its lease on the way out.
        assert listed(api) == (["127.0.0.1"], ["127.0.0.1"])
        names = [lease["metadata"]["name"] for lease in api.get(LEASES).json()["items"]]
        assert names == [lease_name("127.0.0.1", int(url.rsplit(":", 1)[1]))]
