"""The API server compacts etcd history in the background (--etcd-compaction-interval), owned by its lifespan."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.interface import CompactedError
from tests.support.apiserver import running_apiserver

CM = "/api/v1/namespaces/default/configmaps"


async def _revision_is_compacted(storage: EtcdStorage, prefix: str, revision: int) -> bool:
    try:
        await storage.list(prefix, revision=revision)
    except CompactedError:
        return True
    return False


async def test_history_is_compacted_every_interval(etcd_url: str, etcd_prefix: str) -> None:
    storage = EtcdStorage([etcd_url])
    await storage.connect()
    try:
        with running_apiserver(etcd_url, etcd_prefix, etcd_compaction_interval=0.2) as url:
            async with httpx.AsyncClient(base_url=url) as api:
                first = await api.post(CM, json={"metadata": {"name": "a"}})
                old_revision = int(first.json()["metadata"]["resourceVersion"])
                await api.post(CM, json={"metadata": {"name": "b"}})
                # Two intervals: one to sample a revision past `old_revision`, one to compact to it.
                for _ in range(40):
                    if await _revision_is_compacted(storage, etcd_prefix, old_revision - 1):
                        break
                    await api.post(CM, json={"metadata": {"generateName": "c-"}})
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("etcd history was never compacted")
                watch = await api.get(CM, params={"watch": "1", "resourceVersion": str(old_revision - 1),
                                                  "timeoutSeconds": "1"})
                assert '"code":410' in watch.text
    finally:
        await storage.close()


async def test_interval_zero_disables_compaction(etcd_url: str, etcd_prefix: str) -> None:
    storage = EtcdStorage([etcd_url])
    await storage.connect()
    try:
        with running_apiserver(etcd_url, etcd_prefix, etcd_compaction_interval=0) as url:
            async with httpx.AsyncClient(base_url=url) as api:
                first = await api.post(CM, json={"metadata": {"name": "a"}})
                revision = int(first.json()["metadata"]["resourceVersion"])
                await asyncio.sleep(0.3)
                await api.post(CM, json={"metadata": {"name": "b"}})
                assert not await _revision_is_compacted(storage, etcd_prefix, revision)
    finally:
        await storage.close()
