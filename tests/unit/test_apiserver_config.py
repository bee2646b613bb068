"""Command-line flags of the API server (apiserver/config.py) added for Services and compaction."""

from __future__ import annotations

import pytest

from apiserver.config import Config, parse_args
from apiserver.kubernetes_service import advertise_address


def test_defaults_match_kubernetes() -> None:
    config = parse_args([])
    assert config.service_cluster_ip_range == "10.96.0.0/12"
    assert config.service_node_port_range == (30000, 32767)
    assert config.etcd_compaction_interval == 300.0
    assert config.advertise_address is None


@pytest.mark.parametrize(("text", "seconds"), [("5m", 300.0), ("90s", 90.0), ("0", 0.0), ("1h", 3600.0),
                                               ("250ms", 0.25), ("2.5", 2.5)])
def test_compaction_interval_durations(text: str, seconds: float) -> None:
    assert parse_args(["--etcd-compaction-interval", text]).etcd_compaction_interval == seconds


@pytest.mark.parametrize("argv", [["--etcd-compaction-interval", "soon"], ["--service-node-port-range", "9-1"],
                                  ["--service-node-port-range", "a-b"], ["--service-cluster-ip-range", "10.96/x"]])
def test_bad_values_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_service_flags() -> None:
    config = parse_args(["--service-cluster-ip-range", "10.0.0.0/24", "--service-node-port-range", "31000-31010",
                         "--advertise-address", "192.0.2.1"])
    assert (config.service_cluster_ip_range, config.service_node_port_range) == ("10.0.0.0/24", (31000, 31010))
    assert advertise_address(config) == "192.0.2.1"


def test_advertise_address_defaults_to_the_bind_address() -> None:
    assert advertise_address(Config(bind_address="127.0.0.2")) == "127.0.0.2"
    assert advertise_address(Config(bind_address="0.0.0.0")) != "0.0.0.0"
