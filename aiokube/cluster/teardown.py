"""Removing every pod sandbox of a node's containerd through CRI, so no shim or container outlives `down`.

The node agent deliberately leaves pods running when it stops (a restarted agent adopts them); tearing a cluster
down is the one place where they must all go.
"""

from __future__ import annotations

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc


def remove_all_pods(socket_path: str, *, timeout: float = 30.0) -> int:
    """Stop and remove every sandbox (and so its containers); returns how many were removed."""
    with grpc.insecure_channel(f"unix://{socket_path}") as channel:
        runtime = api_pb2_grpc.RuntimeServiceStub(channel)
        sandboxes = runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=timeout).items
        for sandbox in sandboxes:
            runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=timeout)
            runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=timeout)
        return len(sandboxes)
