"""`python -m controllers` flags: Go-style durations, --leader-elect=false, the controller list."""

from __future__ import annotations

import argparse

import pytest

from controllers.__main__ import build_parser, options_from, parse_duration
from controllers.manager import CONTROLLERS, ControllerManager, ManagerOptions


def test_durations() -> None:
    assert parse_duration("40s") == 40 and parse_duration("5m") == 300
    assert parse_duration("1m30s") == 90 and parse_duration("500ms") == 0.5 and parse_duration("3") == 3
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration("soon")


def test_flags_map_to_options() -> None:
    args = build_parser().parse_args(["--kubeconfig", "k", "--leader-elect=false", "--controllers",
                                      "replicaset,deployment", "--node-monitor-grace-period", "2s",
                                      "--pod-eviction-timeout", "10s"])
    options = options_from(args)
    assert not options.leader_elect and options.controllers == ["replicaset", "deployment"]
    assert options.node_monitor_grace_period == 2 and options.pod_eviction_timeout == 10
    assert options_from(build_parser().parse_args(["--kubeconfig", "k"])).leader_elect is True


def test_controller_selection() -> None:
    assert ControllerManager(None, ManagerOptions(controllers=None)).enabled() == list(CONTROLLERS)
    with pytest.raises(ValueError, match="unknown controllers: nope"):
        ControllerManager(None, ManagerOptions(controllers=["nope"])).enabled()
