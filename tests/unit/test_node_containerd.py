"""The containerd config and CNI conflist a node starts with: fixed pod CIDR vs. CIDR from the cluster."""

from __future__ import annotations

import json
import os

from aiokube.cluster.join import NodeLayout
from aiokube.node.containerd import (
    CONFLIST_NAME,
    POD_CIDR_TEMPLATE_FIELD,
    ContainerdConfig,
    render_cni_conflist,
    render_cni_conflist_template,
    render_config,
    write_config,
)


def _subnets(conflist: dict[str, object]) -> list[str]:
    bridge = conflist["plugins"][0]  # type: ignore[index]
    return [r["subnet"] for ranges in bridge["ipam"]["ranges"] for r in ranges]  # type: ignore[index]


def test_conflist_is_bridge_host_local_portmap_loopback_for_the_cidr(tmp_path) -> None:
    cfg = ContainerdConfig(root_dir=str(tmp_path), pod_cidr="10.244.3.0/24", ip_masq=False, bridge_name="cni9")
    conf = json.loads(render_cni_conflist(cfg))
    assert conf["cniVersion"] == "1.0.0"
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "portmap", "loopback"]
    bridge = conf["plugins"][0]
    assert bridge["bridge"] == "cni9" and bridge["ipMasq"] is False and bridge["isGateway"] is True
    assert _subnets(conf) == ["10.244.3.0/24"]
    # host-local keeps its allocations per node, never in the machine-wide default dir.
    assert bridge["ipam"]["dataDir"] == os.path.join(str(tmp_path), "ipam")
    # An explicit CIDR wins over the config's.
    assert _subnets(json.loads(render_cni_conflist(cfg, "10.244.9.0/24"))) == ["10.244.9.0/24"]


def test_template_is_the_same_conflist_with_containerds_pod_cidr_field(tmp_path) -> None:
    cfg = ContainerdConfig(root_dir=str(tmp_path), pod_cidr=None, ip_masq=False)
    template = render_cni_conflist_template(cfg)
    assert template.count(POD_CIDR_TEMPLATE_FIELD) == 1
    # What containerd's text/template produces for UpdateRuntimeConfig(pod_cidr="10.244.5.0/24"):
    rendered = template.replace(POD_CIDR_TEMPLATE_FIELD, "10.244.5.0/24")
    assert json.loads(rendered) == json.loads(render_cni_conflist(cfg, "10.244.5.0/24"))


def test_fixed_cidr_writes_the_conflist_and_no_template(tmp_path) -> None:
    cfg = ContainerdConfig(root_dir=str(tmp_path / "c"), pod_cidr="10.244.1.0/24")
    write_config(cfg)
    assert os.listdir(cfg.cni_conf_dir) == [CONFLIST_NAME]
    with open(cfg.cni_conflist_path) as f:
        assert _subnets(json.load(f)) == ["10.244.1.0/24"]
    assert "conf_template" not in render_config(cfg)
    assert not os.path.exists(cfg.cni_conf_template)


def test_no_cidr_leaves_the_conf_dir_empty_and_points_containerd_at_the_template(tmp_path) -> None:
    cfg = ContainerdConfig(root_dir=str(tmp_path / "c"), pod_cidr=None)
    write_config(cfg)
    # Empty conf dir: containerd reports NetworkReady=false until the agent passes the Node's podCIDR.
    assert os.listdir(cfg.cni_conf_dir) == []
    with open(cfg.config_path) as f:
        assert f'conf_template = "{cfg.cni_conf_template}"' in f.read()
    with open(cfg.cni_conf_template) as f:
        assert POD_CIDR_TEMPLATE_FIELD in f.read()


def test_no_cidr_keeps_a_conflist_containerd_already_rendered(tmp_path) -> None:
    """A restarted containerd of a node that already got its CIDR keeps its network."""
    cfg = ContainerdConfig(root_dir=str(tmp_path / "c"), pod_cidr=None)
    write_config(cfg)
    rendered = os.path.join(cfg.cni_conf_dir, "10-containerd-net.conflist")
    with open(rendered, "w") as f:
        f.write(render_cni_conflist(cfg, "10.244.2.0/24"))
    write_config(cfg)
    assert os.listdir(cfg.cni_conf_dir) == ["10-containerd-net.conflist"]


def test_joined_node_leaves_the_cidr_to_the_cluster_unless_fixed(tmp_path) -> None:
    layout = NodeLayout(str(tmp_path), "w1", "172.30.0.12")
    assert "--pod-cidr" not in layout.commands()["kubelet"]
    cfg = layout.containerd_config()
    assert isinstance(cfg, ContainerdConfig) and cfg.pod_cidr is None and cfg.ip_masq is False
    fixed = NodeLayout(str(tmp_path), "w1", "172.30.0.12", "10.250.0.0/24")
    kubelet = fixed.commands()["kubelet"]
    assert kubelet[kubelet.index("--pod-cidr") + 1] == "10.250.0.0/24"
