"""In-memory fakes for unit-testing reconcilers without an API server: a fake client and fake informers.

`FakeClient` keeps objects per resource with uids, resourceVersions (409 on a stale one), generateName and
generation bumps; it does not touch the informers. `FakeInformers.sync(client)` then plays what a watch would
deliver, so a test decides exactly when the caches catch up (and can prove expectations prevent overshoot).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import itertools
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokube.api.errors import ApiError
from aiokube.api.resources import lookup
from aiokube.api.types import Obj
from aiokube.client import Store
from controllers.ownerrefs import object_key
from controllers.podutil import is_active, is_ready
from controllers.timeutil import Clock, format_time, system_clock


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeClient:
    def __init__(self, *, clock: Clock = system_clock) -> None:
        self.clock = clock
        self.objects: dict[str, dict[str, Obj]] = {}
        self.actions: list[tuple[str, str, str]] = []  # (verb, resource plural, key)
        self._rv = itertools.count(1)
        self._names = itertools.count(1)
        self.fail_creates: Callable[[str, Obj], ApiError | None] | None = None

    def _bucket(self, resource: str) -> dict[str, Obj]:
        return self.objects.setdefault(lookup(resource).plural, {})

    @staticmethod
    def _key(namespace: str | None, name: str) -> str:
        return f"{namespace}/{name}" if namespace else name

    def _not_found(self, resource: str, name: str) -> ApiError:
        return ApiError(404, f'{lookup(resource).plural} "{name}" not found', "NotFound")

    def seed(self, resource: str, obj: Obj) -> Obj:
        """Store an object as if created earlier (no action recorded)."""
        stored = self._prepare(resource, copy.deepcopy(obj))
        self._bucket(resource)[object_key(stored)] = stored
        return copy.deepcopy(stored)

    def _prepare(self, resource: str, obj: Obj) -> Obj:
        info = lookup(resource)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            meta["name"] = f"{meta.get('generateName', 'obj-')}{next(self._names):05d}"
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", format_time(self.clock()))
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._rv))
        obj.setdefault("apiVersion", info.api_version)
        obj.setdefault("kind", info.kind)
        return obj

    async def get(self, resource: str, name: str, namespace: str | None = None) -> Obj:
        obj = self._bucket(resource).get(self._key(namespace, name))
        if obj is None:
            raise self._not_found(resource, name)
        return copy.deepcopy(obj)

    async def list(self, resource: str, namespace: str | None = None, **_: Any) -> Obj:
        items = [copy.deepcopy(o) for o in self._bucket(resource).values()
                 if namespace is None or o["metadata"].get("namespace") == namespace]
        return {"items": items, "metadata": {"resourceVersion": str(next(self._rv))}}

    async def create(self, resource: str, body: Obj, namespace: str | None = None, **_: Any) -> Obj:
        body = copy.deepcopy(body)
        if namespace:
            body.setdefault("metadata", {})["namespace"] = namespace
        if self.fail_creates is not None and (err := self.fail_creates(resource, body)) is not None:
            raise err
        if body["metadata"].get("name") and object_key(body) in self._bucket(resource):
            raise ApiError(409, f'{lookup(resource).plural} "{body["metadata"]["name"]}" already exists',
                           "AlreadyExists")
        stored = self._prepare(resource, body)
        self._bucket(resource)[object_key(stored)] = stored
        self.actions.append(("create", lookup(resource).plural, object_key(stored)))
        return copy.deepcopy(stored)

    def _current(self, resource: str, body: Obj) -> Obj:
        current = self._bucket(resource).get(object_key(body))
        if current is None:
            raise self._not_found(resource, body["metadata"]["name"])
        rv = body["metadata"].get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "the object has been modified; please apply your changes to the latest version",
                           "Conflict")
        return current

    async def update(self, resource: str, body: Obj, namespace: str | None = None, **_: Any) -> Obj:
        current = self._current(resource, body)
        new = copy.deepcopy(body)
        new["status"] = copy.deepcopy(current.get("status", {}))
        if new.get("spec") != current.get("spec"):
            new["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        new["metadata"]["resourceVersion"] = str(next(self._rv))
        self._bucket(resource)[object_key(new)] = new
        self.actions.append(("update", lookup(resource).plural, object_key(new)))
        return copy.deepcopy(new)

    async def update_status(self, resource: str, body: Obj, namespace: str | None = None, **_: Any) -> Obj:
        current = self._current(resource, body)
        new = copy.deepcopy(current)
        new["status"] = copy.deepcopy(body.get("status", {}))
        new["metadata"]["resourceVersion"] = str(next(self._rv))
        self._bucket(resource)[object_key(new)] = new
        self.actions.append(("update_status", lookup(resource).plural, object_key(new)))
        return copy.deepcopy(new)

    async def patch(self, resource: str, name: str, body: Any, namespace: str | None = None,
                    patch_type: str = "merge", subresource: str | None = None, **_: Any) -> Obj:
        if patch_type != "merge":
            raise ApiError(415, f"fake client supports merge patches only, not {patch_type}")
        key = self._key(namespace, name)
        current = self._bucket(resource).get(key)
        if current is None:
            raise self._not_found(resource, name)
        self._current(resource, {"metadata": {"name": name, "namespace": namespace,
                                              "resourceVersion": body.get("metadata", {}).get("resourceVersion")}})
        new = merge_patch(current, body)
        if new.get("spec") != current.get("spec"):
            new["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        new["metadata"]["resourceVersion"] = str(next(self._rv))
        self._bucket(resource)[key] = new
        self.actions.append(("patch", lookup(resource).plural, key))
        return copy.deepcopy(new)

    async def delete(self, resource: str, name: str, namespace: str | None = None,
                     preconditions: dict[str, Any] | None = None, **_: Any) -> Obj:
        key = self._key(namespace, name)
        obj = self._bucket(resource).get(key)
        if obj is None:
            raise self._not_found(resource, name)
        for field_name, wanted in (preconditions or {}).items():  # as the API server checks them: 409
            if wanted and obj["metadata"].get(field_name) != wanted:
                raise ApiError(409, f"Precondition failed: {field_name} in precondition: {wanted}", "Conflict")
        del self._bucket(resource)[key]
        self.actions.append(("delete", lookup(resource).plural, key))
        return obj

    def all(self, resource: str) -> builtins.list[Obj]:
        return [copy.deepcopy(o) for o in self._bucket(resource).values()]

    def count(self, verb: str, resource: str) -> int:
        return sum(1 for v, r, _ in self.actions if v == verb and r == lookup(resource).plural)


class FakeInformer:
    def __init__(self, resource: str) -> None:
        self.resource = resource
        self.store = Store()
        self.has_synced = True
        self._handlers: list[tuple[Any, Any, Any]] = []

    def add_handler(self, on_add: Any = None, on_update: Any = None, on_delete: Any = None) -> None:
        self._handlers.append((on_add, on_update, on_delete))

    def add_index(self, name: str, func: Callable[[Obj], Iterable[str]]) -> None:
        self.store.add_index(name, func)

    async def wait_synced(self) -> None:
        return None

    async def run(self) -> None:
        return None

    def apply(self, objects: list[Obj]) -> None:
        """Make the cache equal to `objects`, firing handlers as a watch would."""
        fresh = {object_key(o): o for o in objects}
        for key, obj in fresh.items():
            old = self.store.get(key)
            if old is not None and old["metadata"].get("resourceVersion") == obj["metadata"].get("resourceVersion"):
                continue
            self.store.upsert(copy.deepcopy(obj))
            for on_add, on_update, _ in self._handlers:
                if old is None and on_add:
                    on_add(copy.deepcopy(obj))
                elif old is not None and on_update:
                    on_update(old, copy.deepcopy(obj))
        for key in [k for k in self.store.keys() if k not in fresh]:
            gone = self.store.delete(key)
            for _, _, on_delete in self._handlers:
                if on_delete and gone is not None:
                    on_delete(gone)


class FakeInformers:
    """Stands in for SharedInformers (same `get`/`add_index`), fed from a FakeClient by `sync`."""

    def __init__(self) -> None:
        self.informers: dict[str, FakeInformer] = {}
        self._indexes: dict[str, dict[str, Callable[[Obj], Iterable[str]]]] = {}

    def get(self, resource: str) -> FakeInformer:
        from controllers.informers import _COMMON_INDEXES, NODE_INDEX, _node_of

        if resource not in self.informers:
            informer = FakeInformer(resource)
            self.informers[resource] = informer
            for name, func in _COMMON_INDEXES.items():
                informer.add_index(name, func)
            if resource == "pods":
                informer.add_index(NODE_INDEX, _node_of)
        return self.informers[resource]

    def add_index(self, resource: str, name: str, func: Callable[[Obj], Iterable[str]]) -> None:
        self.get(resource).add_index(name, func)

    def sync(self, client: FakeClient) -> None:
        for resource, informer in self.informers.items():
            informer.apply(client.all(resource))


class FakeQueue:
    def __init__(self) -> None:
        self.added: list[str] = []
        self.delayed: list[tuple[str, float]] = []

    def add(self, key: str) -> None:
        self.added.append(key)

    def add_after(self, key: str, delay: float) -> None:
        self.delayed.append((key, delay))


# --- helpers for integration tests against a real API server ---------------------------------------------------
class running_manager:
    """Run a ControllerManager in this event loop for the duration of an `async with`."""

    def __init__(self, client: Any, options: Any = None) -> None:
        from controllers.manager import ControllerManager

        self.manager = ControllerManager(client, options)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Any:
        self._task = asyncio.create_task(self.manager.run())
        return self.manager

    async def __aexit__(self, *exc: object) -> None:
        """Stop the manager (idempotent, so a test may stop it early and still leave the block)."""
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def eventually(check: Callable[[], Awaitable[Any]], *, within: float = 10.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns a truthy value (returned) or `within` seconds pass (AssertionError)."""
    deadline = asyncio.get_running_loop().time() + within
    last: Any = None
    while True:
        try:
            last = await check()
            if last:
                return last
        except AssertionError as err:
            last = err
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s; last result: {last!r}")
        await asyncio.sleep(interval)


async def mark_pod_ready(client: Any, pod: Obj, *, ready: bool = True, ip: str | None = None,
                         now: float | None = None) -> Obj:
    """What a kubelet would report: Running, a podIP and the Ready condition (via pods/status)."""
    stamp = format_time(now if now is not None else system_clock())
    status = dict(pod.get("status") or {})
    status["phase"] = "Running"
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Ready"]
    conditions.append({"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": stamp})
    status["conditions"] = conditions
    for attempt in range(5):
        try:
            result: Obj = await client.update_status("pods", {**pod, "status": status})
            return result
        except ApiError as err:
            if err.code != 409 or attempt == 4:
                raise
            pod = await client.get("pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
    raise AssertionError("unreachable")


class RolloutChecker:
    """Watches pods and proves the rolling-update bounds at every event: active pods never exceed
    replicas + maxSurge, ready pods never drop below replicas - maxUnavailable once the rollout started.
    Plays the kubelet too: each new pod is marked Ready (via pods/status) `ready_delay` seconds after it appears."""

    def __init__(self, client: Any, namespace: str, app: str, *, ready_delay: float = 0.05,
                 ready_if: Callable[[Obj], bool] = lambda pod: True) -> None:
        self.client, self.namespace, self.app = client, namespace, app
        self.ready_delay = ready_delay
        self.ready_if = ready_if  # pods it rejects never get Ready (a crash-looping container, say)
        self.pods: dict[str, dict[str, Any]] = {}
        self.max_active = 0
        self.min_ready = 10**9
        self.tracking_ready = False
        self.worst: list[tuple[str, bool, str]] = []
        self.helpers: set[asyncio.Task[None]] = set()  # the 'kubelet' updates in flight

    def record(self) -> None:
        active = [p for p in self.pods.values() if is_active(p)]
        self.max_active = max(self.max_active, len(active))
        if self.tracking_ready:
            ready = sum(1 for p in active if is_ready(p))
            if ready < self.min_ready:
                self.min_ready = ready
                # what the pods looked like at the worst moment, for the assertion message
                self.worst = sorted((p["spec"]["containers"][0]["image"], is_ready(p), p["metadata"]["name"])
                                    for p in active)

    async def run(self, rv: str) -> None:
        """Watch from `rv` until cancelled, resuming after the server ends a stream (no event is skipped)."""
        while True:
            async for event in self.client.watch("pods", namespace=self.namespace, resource_version=rv,
                                                 label_selector=f"app={self.app}"):
                obj = event["object"]
                rv = obj.get("metadata", {}).get("resourceVersion") or rv
                if event["type"] == "DELETED":
                    self.pods.pop(obj["metadata"]["name"], None)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    self.pods[obj["metadata"]["name"]] = obj
                    if event["type"] == "ADDED" and is_active(obj) and self.ready_if(obj):
                        asyncio.get_running_loop().call_later(self.ready_delay, self._ready_later, obj)
                self.record()

    def _ready_later(self, pod: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self._make_ready(pod))
        self.helpers.add(task)
        task.add_done_callback(self.helpers.discard)

    async def _make_ready(self, pod: dict[str, Any]) -> None:
        try:
            await mark_pod_ready(self.client, pod)
        except Exception:  # deleted meanwhile
            return


# --- the controller-manager as a real process ---------------------------------------------------------------
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_kubeconfig(path: str, server: str) -> str:
    """A kubeconfig for a plain-HTTP API server (what kubectl and `python -m controllers` read)."""
    with open(path, "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
users:
- name: test
  user: {{}}
contexts:
- name: test
  context:
    cluster: test
    user: test
    namespace: default
current-context: test
""")
    return path


class ManagerProcess:
    """`python -m controllers` as a child process in its own session; its stderr goes to `log_path`."""

    def __init__(self, kubeconfig: str, log_path: str, *args: str) -> None:
        self.kubeconfig, self.log_path, self.args = kubeconfig, log_path, list(args)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagerProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "controllers", "--kubeconfig", self.kubeconfig, *self.args],
                cwd=PROJECT_ROOT, stdout=log, stderr=log, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, the Lease is not released — a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
