"""Where Service writes meet the ClusterIP/NodePort allocators (apiserver/allocators), as Kubernetes' Service
registry does it around its storage writes:

    allocation = await allocate(state, handle, obj, old)   # fills spec.clusterIP(s)/nodePorts; None: not a Service
    try:
        ... the storage write ...
    except BaseException:
        await rollback(allocation)                         # free what this write claimed
        raise
    await commit(allocation)                               # free what the old object held and the new one dropped

    await release(state, handle, obj)                      # after the Service's key is really deleted

Allocation runs after validation and after managedFields are recorded, so allocated values are owned by no
field manager (as in Kubernetes), and never on dryRun (nothing is claimed for a write that is not made).
"""

from __future__ import annotations

from aiokube.api.types import Obj
from apiserver.allocators import ServiceAllocation
from apiserver.handlers.state import ServerState
from apiserver.registry import ResourceHandle


def _allocates(state: ServerState, handle: ResourceHandle) -> bool:
    return state.allocators is not None and handle.info.plural == "services" and handle.info.group == ""


async def allocate(state: ServerState, handle: ResourceHandle, obj: Obj, old: Obj | None = None) \
        -> ServiceAllocation | None:
    """Claim the Service's ClusterIP and NodePorts (in place); raises 422/500 ApiError as Kubernetes does."""
    if not _allocates(state, handle):
        return None
    assert state.allocators is not None
    return await state.allocators.allocate_for_service(obj, old)


async def rollback(allocation: ServiceAllocation | None) -> None:
    if allocation is not None:
        await allocation.rollback()


async def commit(allocation: ServiceAllocation | None) -> None:
    if allocation is not None:
        await allocation.commit()


async def release(state: ServerState, handle: ResourceHandle, obj: Obj) -> None:
    """Free what a deleted Service held (only the values it still owns)."""
    if _allocates(state, handle):
        assert state.allocators is not None
        await state.allocators.release_for_service(obj)
