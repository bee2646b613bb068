"""`aiokube up`'s prerequisite check names what is missing and how to get it, before starting anything."""

from __future__ import annotations

import pytest

from aiokube.cluster import up


def only_on_path(monkeypatch: pytest.MonkeyPatch, present: set[str]) -> None:
    monkeypatch.setattr(up.shutil, "which", lambda tool: f"/usr/bin/{tool}" if tool in present else None)


ALL_TOOLS = {"etcd", "containerd", "runc", "ctr", "umoci", "ip", "nsenter", "nft"}


def test_missing_tools_are_named_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    only_on_path(monkeypatch, ALL_TOOLS - {"etcd", "runc"})
    monkeypatch.setattr(up.os, "geteuid", lambda: 0)
    monkeypatch.setattr(up.os.path, "isdir", lambda path: True)
    with pytest.raises(up.UpError) as error:
        up.check_prerequisites(1)
    assert str(error.value) == "missing: etcd, runc — run `bash deploy/install.sh` first"


def test_missing_cni_plugins_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    only_on_path(monkeypatch, ALL_TOOLS)
    monkeypatch.setattr(up.os, "geteuid", lambda: 0)
    monkeypatch.setattr(up.os.path, "isdir", lambda path: path != "/usr/lib/cni")
    with pytest.raises(up.UpError, match=r"missing: CNI plugins \(/usr/lib/cni\)"):
        up.check_prerequisites(1)


def test_nodes_need_root_and_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    only_on_path(monkeypatch, ALL_TOOLS)
    monkeypatch.setattr(up.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(up.os.path, "isdir", lambda path: True)
    with pytest.raises(up.UpError, match="nodes need root"):
        up.check_prerequisites(1)


def test_a_control_plane_without_nodes_needs_only_etcd(monkeypatch: pytest.MonkeyPatch) -> None:
    only_on_path(monkeypatch, {"etcd"})
    monkeypatch.setattr(up.os, "geteuid", lambda: 1000)
    up.check_prerequisites(0)  # no exception: node tools and root are not needed
    only_on_path(monkeypatch, set())
    with pytest.raises(up.UpError, match="missing: etcd"):
        up.check_prerequisites(0)
