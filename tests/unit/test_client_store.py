"""Object keys and the indexed Store."""

from __future__ import annotations

import pytest

from aiokube.client import (
    Store,
    controller_uid_index,
    namespace_index,
    node_name_index,
    object_key,
    owner_uid_index,
    split_key,
)


def obj(name: str, namespace: str | None = None, node: str | None = None, owners: list[dict] | None = None) -> dict:
    meta: dict = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if owners:
        meta["ownerReferences"] = owners
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}}


def test_object_key_and_split_key() -> None:
    assert object_key(obj("web", "default")) == "default/web"
    assert object_key(obj("n1")) == "n1"
    assert split_key("default/web") == ("default", "web")
    assert split_key("n1") == (None, "n1")


def test_store_indexes_follow_updates_and_deletes() -> None:
    store = Store()
    store.upsert(obj("a", "ns1", node="n1"))
    store.add_index("node", node_name_index)  # indexes what is already there
    store.add_index("ns", namespace_index)
    store.upsert(obj("b", "ns2", node="n1"))
    store.upsert(obj("c", "ns2"))
    assert [o["metadata"]["name"] for o in store.by_index("node", "n1")] == ["a", "b"]
    assert [o["metadata"]["name"] for o in store.by_index("node", "")] == ["c"]
    old = store.upsert(obj("a", "ns1", node="n2"))
    assert old is not None and old["spec"]["nodeName"] == "n1"
    assert [o["metadata"]["name"] for o in store.by_index("node", "n1")] == ["b"]
    store.delete("ns2/b")
    assert store.by_index("node", "n1") == []
    assert store.index_keys("ns", "ns2") == {"ns2/c"}
    assert len(store) == 2 and "ns1/a" in store
    with pytest.raises(KeyError):
        store.by_index("missing", "x")


def test_owner_indexes() -> None:
    owners: list[dict] = [{"uid": "u1", "controller": True}, {"uid": "u2"}]
    assert owner_uid_index(obj("p", "ns", owners=owners)) == ["u1", "u2"]
    assert controller_uid_index(obj("p", "ns", owners=owners)) == ["u1"]
    assert owner_uid_index(obj("p", "ns")) == []
