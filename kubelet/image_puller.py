"""imagePullPolicy through CRI: ImageStatus first, PullImage only when absent (IfNotPresent) or Always.

Failures surface as the kubelet's waiting reasons: ErrImagePull on a failed pull, ImagePullBackOff while the
per-image back-off holds, ErrImageNeverPull when policy Never meets a missing image.

There is no registry on these nodes, so PullImage of a `localhost/…` image always fails; under policy Always
such an image already present locally is used (and a log line says so) rather than failing every pod.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokube.api.types import Obj
from kubelet.backoff import Backoff
from kubelet.cri import CriError, RuntimeClient, pb

log = logging.getLogger(__name__)

ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"


class ImagePullError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def pull_policy(container: Obj) -> str:
    policy = container.get("imagePullPolicy")
    if policy:
        return str(policy)
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1].partition("@")[0]
    return "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"


@dataclass
class ImagePuller:
    runtime: RuntimeClient
    backoff: Backoff

    async def ensure(self, pod: Obj, container: Obj, sandbox_config: pb.PodSandboxConfig) -> str:
        """Make the container's image present; return the image reference to create the container with."""
        image = str(container.get("image", ""))
        policy = pull_policy(container)
        present = await self.runtime.image_status(image)
        if present is not None and policy != "Always":
            return image
        if present is None and policy == "Never":
            raise ImagePullError(ERR_IMAGE_NEVER_PULL,
                                 f'Container image "{image}" is not present with pull policy of Never')
        key = f"{pod['metadata']['uid']}_{image}"
        if self.backoff.in_backoff_since_update(key):
            raise ImagePullError(IMAGE_PULL_BACK_OFF, f'Back-off pulling image "{image}"')
        try:
            await self.runtime.pull_image(image, sandbox_config)
        except CriError as e:
            if present is not None and image.startswith("localhost/"):
                log.info("pull of %s failed (no registry); using the local copy", image)
                return image
            self.backoff.next(key)
            raise ImagePullError(ERR_IMAGE_PULL, f'Failed to pull image "{image}": {e.details}') from None
        self.backoff.reset(key)
        return image
