"""imagePullPolicy: Always pulls (local copy of a registry-less `localhost/` image as documented), Never with a
missing image is ErrImageNeverPull, failed pulls are ErrImagePull with the runtime's reason, then back-off."""

from __future__ import annotations

import grpc
import pytest

from kubelet.backoff import Backoff
from kubelet.cri import CriError, pb
from kubelet.image_puller import (
    ERR_IMAGE_NEVER_PULL,
    ERR_IMAGE_PULL,
    IMAGE_PULL_BACK_OFF,
    ImagePuller,
    ImagePullError,
    pull_policy,
)

POD = {"metadata": {"uid": "u1", "name": "p", "namespace": "default"}}
PULL_FAILURE = "failed to resolve reference: dial tcp: lookup registry.example: no such host"


class ImageRuntime:
    def __init__(self, present: set[str], pull_ok: bool) -> None:
        self.present = present
        self.pull_ok = pull_ok
        self.pulls: list[str] = []

    async def image_status(self, image: str) -> pb.Image | None:
        return pb.Image(id=f"sha256:{image}", repo_tags=[image]) if image in self.present else None

    async def pull_image(self, image: str, sandbox_config: pb.PodSandboxConfig | None = None) -> str:
        self.pulls.append(image)
        if not self.pull_ok:
            raise CriError("PullImage", grpc.StatusCode.UNKNOWN, PULL_FAILURE)
        self.present.add(image)
        return f"sha256:{image}"


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def puller(runtime: ImageRuntime, clock: Clock | None = None) -> ImagePuller:
    return ImagePuller(runtime, Backoff(10, 300, clock=clock or Clock()))  # type: ignore[arg-type]


async def test_always_pulls_even_when_present() -> None:
    runtime = ImageRuntime({"registry.example/app:1"}, pull_ok=True)
    container = {"name": "c", "image": "registry.example/app:1", "imagePullPolicy": "Always"}
    assert await puller(runtime).ensure(POD, container, pb.PodSandboxConfig()) == "registry.example/app:1"
    assert runtime.pulls == ["registry.example/app:1"]


async def test_always_without_registry_uses_the_local_copy_of_a_localhost_image() -> None:
    runtime = ImageRuntime({"localhost/busybox:latest"}, pull_ok=False)
    container = {"name": "c", "image": "localhost/busybox:latest", "imagePullPolicy": "Always"}
    assert await puller(runtime).ensure(POD, container, pb.PodSandboxConfig()) == "localhost/busybox:latest"
    assert runtime.pulls == ["localhost/busybox:latest"]  # the pull was attempted first


async def test_always_with_a_failing_pull_of_a_registry_image_reports_err_image_pull() -> None:
    runtime = ImageRuntime({"registry.example/app:1"}, pull_ok=False)
    container = {"name": "c", "image": "registry.example/app:1", "imagePullPolicy": "Always"}
    with pytest.raises(ImagePullError) as err:
        await puller(runtime).ensure(POD, container, pb.PodSandboxConfig())
    assert err.value.reason == ERR_IMAGE_PULL
    assert err.value.message == f'Failed to pull image "registry.example/app:1": {PULL_FAILURE}'


async def test_never_with_a_missing_image_is_err_image_never_pull_without_pulling() -> None:
    runtime = ImageRuntime(set(), pull_ok=True)
    container = {"name": "c", "image": "app:1", "imagePullPolicy": "Never"}
    with pytest.raises(ImagePullError) as err:
        await puller(runtime).ensure(POD, container, pb.PodSandboxConfig())
    assert err.value.reason == ERR_IMAGE_NEVER_PULL
    assert err.value.message == 'Container image "app:1" is not present with pull policy of Never'
    assert runtime.pulls == []


async def test_failed_pull_backs_off_then_retries() -> None:
    clock = Clock()
    runtime = ImageRuntime(set(), pull_ok=False)
    images = puller(runtime, clock)
    container = {"name": "c", "image": "registry.example/missing:1", "imagePullPolicy": "IfNotPresent"}
    with pytest.raises(ImagePullError) as first:
        await images.ensure(POD, container, pb.PodSandboxConfig())
    assert first.value.reason == ERR_IMAGE_PULL and PULL_FAILURE in first.value.message
    with pytest.raises(ImagePullError) as second:
        await images.ensure(POD, container, pb.PodSandboxConfig())
    assert second.value.reason == IMAGE_PULL_BACK_OFF
    assert second.value.message == 'Back-off pulling image "registry.example/missing:1"'
    assert len(runtime.pulls) == 1
    clock.now += 11  # the 10 s back-off has passed: pull again
    with pytest.raises(ImagePullError) as third:
        await images.ensure(POD, container, pb.PodSandboxConfig())
    assert third.value.reason == ERR_IMAGE_PULL and len(runtime.pulls) == 2


def test_default_policy_follows_the_tag() -> None:
    assert pull_policy({"image": "busybox"}) == "Always"
    assert pull_policy({"image": "busybox:latest"}) == "Always"
    assert pull_policy({"image": "localhost:5000/busybox:1.36"}) == "IfNotPresent"
    assert pull_policy({"image": "localhost:5000/busybox"}) == "Always"
