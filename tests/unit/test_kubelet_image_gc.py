"""Image GC: disk-pressure and age triggers, LRU order, and the images that must never go."""

from __future__ import annotations

import grpc
import pytest

from kubelet.cri import CriError, pb
from kubelet.image_gc import ImageGarbageCollector, ImageGCPolicy

MB = 1_000_000


class FakeImageRuntime:
    def __init__(self) -> None:
        self.images: dict[str, pb.Image] = {}
        self.containers: list[pb.Container] = []
        self.removed: list[str] = []

    def add_image(self, image_id: str, tag: str, size: int, pinned: bool = False) -> None:
        self.images[image_id] = pb.Image(id=image_id, repo_tags=[tag], size=size, pinned=pinned)

    def use(self, tag: str, image_id: str) -> None:
        self.containers.append(pb.Container(id=f"c-{len(self.containers)}", image=pb.ImageSpec(image=tag),
                                            image_ref=image_id, state=pb.CONTAINER_EXITED))

    async def list_images(self) -> list[pb.Image]:
        return list(self.images.values())

    async def list_containers(self) -> list[pb.Container]:
        return list(self.containers)

    async def remove_image(self, image: str) -> None:
        if image not in self.images:
            raise CriError("RemoveImage", grpc.StatusCode.NOT_FOUND, "not found")
        del self.images[image]
        self.removed.append(image)


class Disk:
    def __init__(self, capacity: int, runtime: FakeImageRuntime, other_used: int) -> None:
        self.capacity, self.runtime, self.other_used = capacity, runtime, other_used

    async def stats(self) -> tuple[int, int]:
        used = self.other_used + sum(i.size for i in self.runtime.images.values())
        return self.capacity, self.capacity - used


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(policy: ImageGCPolicy, other_used: int) -> tuple[FakeImageRuntime, ImageGarbageCollector, Clock]:
    rt = FakeImageRuntime()
    clock = Clock()
    disk = Disk(100 * MB, rt, other_used)
    gc = ImageGarbageCollector(rt, policy, fs_stats=disk.stats, clock=clock)  # type: ignore[arg-type]
    return rt, gc, clock


async def test_below_high_threshold_nothing_is_removed() -> None:
    rt, gc, clock = make(ImageGCPolicy(min_age=0), other_used=50 * MB)
    rt.add_image("sha256:a", "a:1", 30 * MB)  # 80 % used < 85 %
    clock.now += 10
    assert await gc.garbage_collect() == []
    assert rt.removed == []


async def test_disk_pressure_removes_least_recently_used_until_low_threshold() -> None:
    rt, gc, clock = make(ImageGCPolicy(high_threshold_percent=85, low_threshold_percent=80, min_age=60),
                         other_used=60 * MB)
    rt.add_image("sha256:pause", "localhost/pause:3.9", 1 * MB)
    rt.add_image("sha256:old", "old:1", 10 * MB)
    rt.add_image("sha256:mid", "mid:1", 10 * MB)
    rt.add_image("sha256:new", "new:1", 10 * MB)
    rt.add_image("sha256:used", "used:1", 5 * MB)
    rt.use("used:1", "sha256:used")
    await gc.detect()  # all first seen at t=1000
    # Record use times: old was last used earliest, then mid, then new.
    for image_id in ("sha256:old", "sha256:mid", "sha256:new"):
        clock.now += 10
        gc.images[image_id].last_used = clock.now
    clock.now += 100  # past min_age
    # usage 96 %; to reach 80 % (20 MB free) 16 MB must go: old (10) then mid (10); new stays.
    removed = await gc.garbage_collect()
    assert removed == ["sha256:old", "sha256:mid"]
    assert set(rt.images) == {"sha256:pause", "sha256:new", "sha256:used"}


async def test_sandbox_pinned_and_in_use_images_are_never_removed() -> None:
    rt, gc, clock = make(ImageGCPolicy(min_age=0, max_age=1), other_used=90 * MB)
    rt.add_image("sha256:pause", "localhost/pause:3.9", 2 * MB)
    rt.add_image("sha256:pinned", "pinned:1", 2 * MB, pinned=True)
    rt.add_image("sha256:used", "used:1", 2 * MB)
    rt.use("used:1", "sha256:used")  # an exited container still holds its image
    await gc.detect()
    clock.now += 3600
    assert await gc.garbage_collect() == []
    assert len(rt.images) == 3


async def test_fresh_images_are_spared_by_min_age() -> None:
    rt, gc, clock = make(ImageGCPolicy(min_age=120), other_used=90 * MB)
    rt.add_image("sha256:fresh", "fresh:1", 8 * MB)
    await gc.detect()
    clock.now += 60
    assert await gc.garbage_collect() == []
    clock.now += 61
    assert await gc.garbage_collect() == ["sha256:fresh"]


async def test_max_age_removes_unused_images_without_disk_pressure() -> None:
    rt, gc, clock = make(ImageGCPolicy(min_age=0, max_age=600), other_used=0)
    rt.add_image("sha256:stale", "stale:1", 1 * MB)
    rt.add_image("sha256:busy", "busy:1", 1 * MB)
    rt.use("busy:1", "sha256:busy")
    await gc.detect()
    clock.now += 599
    assert await gc.garbage_collect() == []
    clock.now += 2
    assert await gc.garbage_collect() == ["sha256:stale"]
    assert set(rt.images) == {"sha256:busy"}


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError):
        ImageGCPolicy(high_threshold_percent=70, low_threshold_percent=80)
