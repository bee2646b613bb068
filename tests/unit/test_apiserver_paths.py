"""Resource paths resolved by the app: collection paths are remembered (they repeat on every create and list),
object paths and unknown paths are not."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from aiokube.api.errors import ApiError
from apiserver.app import ApiServerApp
from apiserver.config import Config
from apiserver.registry import Registry


def _state() -> Any:
    return SimpleNamespace(registry=Registry(storage=None, root="/registry"))  # type: ignore[arg-type]


def test_collection_paths_are_resolved_once() -> None:
    app, state = ApiServerApp(Config()), _state()
    first = app._resolve(state, "/api/v1/namespaces/default/configmaps")
    assert first is not None and (first.namespace, first.name, first.handle.info.plural) == (
        "default", None, "configmaps")
    assert app._resolve(state, "/api/v1/namespaces/default/configmaps") is first
    deployments = app._resolve(state, "/apis/apps/v1/namespaces/web/deployments")
    assert deployments is not None and deployments.handle.info.kind == "Deployment"
    assert deployments.namespace == "web"


def test_object_and_unknown_paths_are_not_remembered() -> None:
    app, state = ApiServerApp(Config()), _state()
    pod = app._resolve(state, "/api/v1/namespaces/default/pods/web")
    assert pod is not None and pod.name == "web"
    assert app._resolve(state, "/api/v1/namespaces/default/pods/web") is not pod
    with pytest.raises(ApiError) as missing:
        app._resolve(state, "/api/v1/namespaces/default/widgets")
    assert missing.value.code == 404
    assert list(app._collections) == []


def test_remembered_paths_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("apiserver.app._COLLECTION_TARGETS", 3)
    app, state = ApiServerApp(Config()), _state()
    for index in range(7):
        assert app._resolve(state, f"/api/v1/namespaces/ns-{index}/configmaps") is not None
        assert len(app._collections) <= 3
