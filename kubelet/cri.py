"""An async CRI v1 client (grpc.aio over the runtime's unix socket): the only place that speaks CRI.

Methods return the generated protobuf messages; callers import `pb` for request types. Every call carries a
deadline so a wedged runtime shows up as an error instead of a hung pod worker.
"""

from __future__ import annotations

import os
from types import TracebackType

import grpc
import grpc.aio
from cri_api.v1 import api_pb2 as pb
from cri_api.v1 import api_pb2_grpc as pb_grpc

__all__ = ["CriError", "RuntimeClient", "pb"]

DEFAULT_TIMEOUT = 30.0  # seconds; RunPodSandbox with CNI takes ~0.1 s, a stop waits for the grace period


class CriError(Exception):
    """A CRI call failed; `code` is the gRPC status code (NOT_FOUND matters to callers)."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method}: {code.name}: {details}")
        self.method = method
        self.code = code
        self.details = details

    @property
    def not_found(self) -> bool:
        return self.code == grpc.StatusCode.NOT_FOUND or "not found" in self.details.lower()


class RuntimeClient:
    """RuntimeService + ImageService of one containerd, through one channel."""

    def __init__(self, socket_path: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.target = f"unix://{os.path.abspath(socket_path)}"
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._runtime: pb_grpc.RuntimeServiceStub | None = None
        self._images: pb_grpc.ImageServiceStub | None = None

    def _stubs(self) -> tuple[pb_grpc.RuntimeServiceStub, pb_grpc.ImageServiceStub]:
        # Created lazily, inside the running loop: grpc.aio channels bind to the loop that first uses them.
        if self._runtime is None or self._images is None:
            self._channel = grpc.aio.insecure_channel(self.target)
            self._runtime = pb_grpc.RuntimeServiceStub(self._channel)
            self._images = pb_grpc.ImageServiceStub(self._channel)
        return self._runtime, self._images

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = self._runtime = self._images = None

    async def __aenter__(self) -> RuntimeClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _call(self, service: str, method: str, request: object, timeout: float | None = None) -> object:  # noqa: ASYNC109
        runtime, images = self._stubs()
        stub = runtime if service == "runtime" else images
        try:
            return await getattr(stub, method)(request, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as e:
            raise CriError(method, e.code(), e.details() or "") from None

    # --- runtime info -------------------------------------------------------------------------------------
    async def version(self) -> pb.VersionResponse:
        r = await self._call("runtime", "Version", pb.VersionRequest(version="v1"))
        assert isinstance(r, pb.VersionResponse)
        return r

    async def status(self) -> pb.StatusResponse:
        r = await self._call("runtime", "Status", pb.StatusRequest(verbose=False))
        assert isinstance(r, pb.StatusResponse)
        return r

    async def update_runtime_config(self, pod_cidr: str) -> None:
        """Hand the node's pod CIDR(s) (comma-separated) to the runtime; containerd renders its CNI conf template."""
        config = pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr=pod_cidr))
        await self._call("runtime", "UpdateRuntimeConfig", pb.UpdateRuntimeConfigRequest(runtime_config=config))

    # --- sandboxes ----------------------------------------------------------------------------------------
    async def run_pod_sandbox(self, config: pb.PodSandboxConfig) -> str:
        r = await self._call("runtime", "RunPodSandbox", pb.RunPodSandboxRequest(config=config))
        assert isinstance(r, pb.RunPodSandboxResponse)
        return r.pod_sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        await self._call("runtime", "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await self._call("runtime", "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))

    async def pod_sandbox_status(self, sandbox_id: str, *, verbose: bool = False) -> pb.PodSandboxStatusResponse:
        r = await self._call(
            "runtime", "PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose)
        )
        assert isinstance(r, pb.PodSandboxStatusResponse)
        return r

    async def list_pod_sandboxes(self, labels: dict[str, str] | None = None) -> list[pb.PodSandbox]:
        flt = pb.PodSandboxFilter(label_selector=labels or {})
        r = await self._call("runtime", "ListPodSandbox", pb.ListPodSandboxRequest(filter=flt))
        assert isinstance(r, pb.ListPodSandboxResponse)
        return list(r.items)

    # --- containers ---------------------------------------------------------------------------------------
    async def create_container(
        self, sandbox_id: str, config: pb.ContainerConfig, sandbox_config: pb.PodSandboxConfig
    ) -> str:
        req = pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config)
        r = await self._call("runtime", "CreateContainer", req)
        assert isinstance(r, pb.CreateContainerResponse)
        return r.container_id

    async def start_container(self, container_id: str) -> None:
        await self._call("runtime", "StartContainer", pb.StartContainerRequest(container_id=container_id))

    async def stop_container(self, container_id: str, timeout_seconds: int) -> None:
        req = pb.StopContainerRequest(container_id=container_id, timeout=timeout_seconds)
        await self._call("runtime", "StopContainer", req, timeout=timeout_seconds + self.timeout)

    async def remove_container(self, container_id: str) -> None:
        await self._call("runtime", "RemoveContainer", pb.RemoveContainerRequest(container_id=container_id))

    async def list_containers(self, labels: dict[str, str] | None = None) -> list[pb.Container]:
        flt = pb.ContainerFilter(label_selector=labels or {})
        r = await self._call("runtime", "ListContainers", pb.ListContainersRequest(filter=flt))
        assert isinstance(r, pb.ListContainersResponse)
        return list(r.containers)

    async def container_status(self, container_id: str, *, verbose: bool = False) -> pb.ContainerStatus:
        req = pb.ContainerStatusRequest(container_id=container_id, verbose=verbose)
        r = await self._call("runtime", "ContainerStatus", req)
        assert isinstance(r, pb.ContainerStatusResponse)
        return r.status

    async def exec_sync(self, container_id: str, cmd: list[str], timeout_seconds: int) -> pb.ExecSyncResponse:
        req = pb.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=timeout_seconds)
        r = await self._call("runtime", "ExecSync", req, timeout=timeout_seconds + self.timeout)
        assert isinstance(r, pb.ExecSyncResponse)
        return r

    async def exec_url(self, container_id: str, cmd: list[str], *, stdin: bool, tty: bool) -> str:
        req = pb.ExecRequest(container_id=container_id, cmd=cmd, tty=tty, stdin=stdin, stdout=True, stderr=not tty)
        r = await self._call("runtime", "Exec", req)
        assert isinstance(r, pb.ExecResponse)
        return r.url

    async def list_container_stats(self) -> list[pb.ContainerStats]:
        r = await self._call("runtime", "ListContainerStats", pb.ListContainerStatsRequest())
        assert isinstance(r, pb.ListContainerStatsResponse)
        return list(r.stats)

    # --- images -------------------------------------------------------------------------------------------
    async def image_status(self, image: str) -> pb.Image | None:
        r = await self._call("image", "ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=image)))
        assert isinstance(r, pb.ImageStatusResponse)
        return r.image if r.HasField("image") else None

    async def pull_image(self, image: str, sandbox_config: pb.PodSandboxConfig | None = None) -> str:
        req = pb.PullImageRequest(image=pb.ImageSpec(image=image), sandbox_config=sandbox_config)
        r = await self._call("image", "PullImage", req, timeout=300.0)
        assert isinstance(r, pb.PullImageResponse)
        return r.image_ref

    async def list_images(self) -> list[pb.Image]:
        r = await self._call("image", "ListImages", pb.ListImagesRequest())
        assert isinstance(r, pb.ListImagesResponse)
        return list(r.images)

    async def remove_image(self, image: str) -> None:
        await self._call("image", "RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=image)))

    async def image_fs_info(self) -> pb.ImageFsInfoResponse:
        r = await self._call("image", "ImageFsInfo", pb.ImageFsInfoRequest())
        assert isinstance(r, pb.ImageFsInfoResponse)
        return r
