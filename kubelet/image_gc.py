"""Unused-image garbage collection (the kubelet's image GC): removes images no container uses.

Two triggers, as in Kubernetes: disk pressure — when the image filesystem's usage reaches
`high_threshold_percent` (imageGCHighThresholdPercent, 85) images are removed, least recently used first, until
usage falls to `low_threshold_percent` (80) — and age — an image unused for `max_age` (imageMaximumGCAge, 0 = off)
goes regardless of disk. Images first seen less than `min_age` ago (imageMinimumGCAge, 2 min) are spared, so a
freshly pulled image is not removed before its container starts. The sandbox (pause) image, pinned images and
images any container (running or exited) references are never removed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kubelet.cri import CriError, RuntimeClient, pb

log = logging.getLogger(__name__)

FsStats = Callable[[], Awaitable[tuple[int, int]]]  # -> (capacity bytes, available bytes) of the image fs


@dataclass
class ImageGCPolicy:
    high_threshold_percent: int = 85
    low_threshold_percent: int = 80
    min_age: float = 120.0  # seconds since first detection before an image may be removed
    max_age: float = 0.0  # seconds unused after which an image is removed regardless of disk usage; 0 = off
    sandbox_image: str = "localhost/pause:3.9"

    def __post_init__(self) -> None:
        if not 0 <= self.low_threshold_percent <= self.high_threshold_percent <= 100:
            raise ValueError("image GC thresholds need 0 <= low <= high <= 100")


@dataclass
class _ImageRecord:
    first_detected: float
    last_used: float
    size: int = 0
    names: set[str] = field(default_factory=set)


def _names(image: pb.Image) -> set[str]:
    return {image.id, *image.repo_tags, *image.repo_digests}


async def statvfs_image_fs(runtime: RuntimeClient) -> tuple[int, int]:
    """Capacity and free bytes of the filesystem holding the runtime's images (from ImageFsInfo's mountpoint)."""
    info = await runtime.image_fs_info()
    mountpoint = info.image_filesystems[0].fs_id.mountpoint if info.image_filesystems else "/"
    st = os.statvfs(mountpoint or "/")
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


class ImageGarbageCollector:
    def __init__(self, runtime: RuntimeClient, policy: ImageGCPolicy, *, fs_stats: FsStats | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime
        self.policy = policy
        self.clock = clock
        self._fs_stats: FsStats = fs_stats or (lambda: statvfs_image_fs(runtime))
        self.images: dict[str, _ImageRecord] = {}  # by image id

    async def detect(self) -> set[str]:
        """Refresh what exists and what is in use; returns the ids of images in use now."""
        now = self.clock()
        images = await self.runtime.list_images()
        containers = await self.runtime.list_containers()  # every container, not only this agent's
        used_refs = {c.image_ref for c in containers} | {c.image.image for c in containers}
        in_use: set[str] = set()
        current: dict[str, _ImageRecord] = {}
        for image in images:
            record = self.images.get(image.id) or _ImageRecord(first_detected=now, last_used=now)
            record.size = image.size
            record.names = _names(image)
            if record.names & used_refs or image.pinned or self.policy.sandbox_image in record.names:
                in_use.add(image.id)
                record.last_used = now
            current[image.id] = record
        self.images = current  # images removed behind our back are forgotten
        return in_use

    async def garbage_collect(self) -> list[str]:
        """One GC round; returns the ids of removed images."""
        in_use = await self.detect()
        now = self.clock()
        candidates = sorted(
            ((image_id, rec) for image_id, rec in self.images.items()
             if image_id not in in_use and now - rec.first_detected >= self.policy.min_age),
            key=lambda item: item[1].last_used)  # least recently used first
        removed: list[str] = []
        if self.policy.max_age > 0:
            for image_id, rec in candidates:
                if now - rec.last_used >= self.policy.max_age and await self._remove(image_id, "unused too long"):
                    removed.append(image_id)
        capacity, available = await self._fs_stats()
        if capacity <= 0:
            return removed
        usage_percent = (capacity - available) * 100 // capacity
        if usage_percent < self.policy.high_threshold_percent:
            return removed
        # Free enough to bring usage down to the low threshold (Kubernetes' amountToFree).
        to_free = capacity * (100 - self.policy.low_threshold_percent) // 100 - available
        log.info("image fs usage %d%% >= %d%%: freeing %d bytes", usage_percent,
                 self.policy.high_threshold_percent, to_free)
        freed = 0
        for image_id, rec in candidates:
            if freed >= to_free:
                break
            if image_id in removed:
                continue
            if await self._remove(image_id, "disk usage"):
                removed.append(image_id)
                freed += rec.size
        if freed < to_free:
            log.warning("image GC freed %d of the %d bytes wanted", freed, to_free)
        return removed

    async def _remove(self, image_id: str, why: str) -> bool:
        try:
            await self.runtime.remove_image(image_id)
        except CriError as e:
            if not e.not_found:
                log.warning("removing image %s failed: %s", image_id, e)
                return False
        log.info("removed image %s (%s)", image_id, why)
        self.images.pop(image_id, None)
        return True
