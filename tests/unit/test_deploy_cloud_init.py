"""deploy/cloud-init/*.yaml: valid #cloud-config by cloud-init's own schema, and consistent with the units they
install, the files those units read, the PKI script, deploy/README.md and the `aiokube join` command line
(issue 7). `cloud-init` comes from deploy/install.sh (Debian 12's package)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiokube.cli import build_parser
from tests.unit.test_deploy_units import INSTALL_PYTHON, NODE_DATA_DIR, UNIT_DIR, exec_argv, parse_unit

REPO = Path(__file__).resolve().parents[2]
CLOUD_INIT_DIR = REPO / "deploy" / "cloud-init"
USER_DATA = sorted(p.name for p in CLOUD_INIT_DIR.glob("*.yaml"))
INSTALL_DIR = str(Path(INSTALL_PYTHON).parents[2])  # /opt/aiokube


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((CLOUD_INIT_DIR / name).read_text())
    assert isinstance(data, dict)
    return data


def runcmd(name: str) -> list[str]:
    commands = load(name).get("runcmd", [])
    assert all(isinstance(c, str) for c in commands), "runcmd entries are shell strings here"
    return list(commands)


def env_file(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))


def unit_variables(unit_name: str) -> set[str]:
    return set(re.findall(r"\$\{(\w+)\}", (UNIT_DIR / unit_name).read_text()))


def units_copied_and_enabled(commands: list[str]) -> tuple[list[str], list[str]]:
    copied: list[str] = []
    enabled: list[str] = []
    for command in commands:
        words = shlex.split(command, comments=True)
        if words[:1] == ["cp"] and words[-1] == "/etc/systemd/system/":
            copied += [Path(w).name for w in words[1:-1]]
            assert all(w.startswith(f"{INSTALL_DIR}/deploy/systemd/") for w in words[1:-1]), command
        if words[:3] == ["systemctl", "enable", "--now"]:
            enabled += words[3:]
    return copied, enabled


def test_there_is_user_data_for_both_roles() -> None:
    assert USER_DATA == ["control-plane.yaml", "node.yaml"]


@pytest.mark.parametrize("name", USER_DATA)
def test_cloud_init_schema_accepts_the_user_data(name: str, tmp_path: Path) -> None:
    text = (CLOUD_INIT_DIR / name).read_text()
    assert text.startswith("#cloud-config\n"), "cloud-init only treats user-data as cloud-config with this line"
    cloud_init = shutil.which("cloud-init")
    if cloud_init is None:
        pytest.skip("SKIPPED LOUDLY: cloud-init is not installed (deploy/install.sh installs it); the consistency "
                    "checks below still ran")
    result = subprocess.run([cloud_init, "schema", "--config-file", str(CLOUD_INIT_DIR / name)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout, result.stdout


def test_cloud_init_schema_check_is_real(tmp_path: Path) -> None:
    """The validator refuses a broken file, so the test above means something."""
    cloud_init = shutil.which("cloud-init")
    if cloud_init is None:
        pytest.skip("SKIPPED LOUDLY: cloud-init is not installed (deploy/install.sh installs it)")
    broken = tmp_path / "broken.yaml"
    broken.write_text("#cloud-config\npackages: containerd\nruncmd: {a: 1}\n")
    result = subprocess.run([cloud_init, "schema", "--config-file", str(broken)], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode != 0, result.stdout


@pytest.mark.parametrize("name", USER_DATA)
def test_runcmd_lines_are_valid_shell(name: str) -> None:
    for command in runcmd(name):
        check = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, (command, check.stderr)


@pytest.mark.parametrize("name", USER_DATA)
def test_user_data_installs_aiokube_where_the_units_expect_it(name: str) -> None:
    commands = runcmd(name)
    assert f"git clone REPO_URL {INSTALL_DIR}" in commands
    assert (f"python3 -m venv {INSTALL_DIR}/.venv && {INSTALL_DIR}/.venv/bin/pip install {INSTALL_DIR}"
            in commands)
    assert {"python3-venv", "git"} <= set(load(name)["packages"])


# --- control plane -----------------------------------------------------------------------------------------------

def test_control_plane_writes_exactly_the_variables_its_units_read() -> None:
    written = {f["path"]: env_file(f["content"]) for f in load("control-plane.yaml")["write_files"]}
    readers: dict[str, set[str]] = {}
    for unit_name in sorted(p.name for p in UNIT_DIR.glob("*.service")):
        for path in parse_unit(UNIT_DIR / unit_name).values("Service", "EnvironmentFile"):
            readers.setdefault(path, set()).update(unit_variables(unit_name))
    for path, variables in written.items():
        assert set(variables) == readers[path], path
    assert set(written) == {"/etc/aiokube/etcd.env", "/etc/aiokube/apiserver.env"}


def test_control_plane_enables_the_units_it_copies_with_pki_for_its_address() -> None:
    commands = runcmd("control-plane.yaml")
    copied, enabled = units_copied_and_enabled(commands)
    expected = ["aiokube-etcd.service", "aiokube-apiserver.service", "aiokube-controller-manager.service",
                "aiokube-scheduler.service"]
    assert copied == expected
    assert [f"{u}.service" for u in enabled] == expected
    assert all((UNIT_DIR / u).exists() for u in copied)
    etcd_env = env_file(next(f["content"] for f in load("control-plane.yaml")["write_files"]
                             if f["path"] == "/etc/aiokube/etcd.env"))
    pki = next(shlex.split(c) for c in commands if "make_control_plane_pki.py" in c)
    assert pki[0] == INSTALL_PYTHON
    assert pki[pki.index("--ip") + 1] == etcd_env["NODE_IP"]
    # The units read /etc/aiokube/{pki/*,*.conf}: the script's --out.
    assert pki[pki.index("--out") + 1] == "/etc/aiokube"
    # PKI before the units start (the API server needs its certificate), daemon-reload before enable.
    order = [next(i for i, c in enumerate(commands) if marker in c)
             for marker in ("make_control_plane_pki.py", "daemon-reload", "enable --now")]
    assert order == sorted(order)
    assert "etcd-server" in load("control-plane.yaml")["packages"]


def test_control_plane_env_files_match_the_readme_walkthrough() -> None:
    readme = (REPO / "deploy" / "README.md").read_text()
    printed = {path: env_file(content.encode().decode("unicode_escape"))
               for content, path in re.findall(r"printf '([^']*)' > (/etc/aiokube/\S+\.env)", readme)}
    written = {f["path"]: env_file(f["content"]) for f in load("control-plane.yaml")["write_files"]}
    assert printed == written


# --- node --------------------------------------------------------------------------------------------------------

def join_argv() -> list[str]:
    commands = [shlex.split(c) for c in runcmd("node.yaml") if " join " in c]
    assert len(commands) == 1
    argv = commands[0]
    assert argv[:2] == [f"{INSTALL_DIR}/.venv/bin/aiokube", "join"], argv
    return argv


def test_node_join_command_is_accepted_by_aiokube_and_writes_systemd_units() -> None:
    args = build_parser().parse_args(join_argv()[1:])
    assert args.command == "join"
    assert args.systemd, "the user-data enables systemd units, so join must write them"
    assert args.unit_dir == "/etc/systemd/system"
    assert args.data_dir == NODE_DATA_DIR  # where the node units read kubelet.conf and containerd's config
    assert args.pod_cidr is None  # nodeipam allocates it
    assert args.server == "https://10.0.0.11:6443"  # the control plane's NODE_IP, the API server unit's port
    apiserver = exec_argv(parse_unit(UNIT_DIR / "aiokube-apiserver.service"))
    assert apiserver[apiserver.index("--port") + 1] == "6443"
    assert args.ca_cert_hash.startswith("sha256:")


def test_node_enables_exactly_the_units_join_writes() -> None:
    from aiokube.cluster.join import NodeLayout

    commands = runcmd("node.yaml")
    _, enabled = units_copied_and_enabled(commands)
    # The same four services `join` knows about (containerd plus NodeLayout.commands()).
    expected = {"aiokube-containerd"} | {f"aiokube-{n}" for n in NodeLayout(NODE_DATA_DIR, "n", "10.0.0.12")
                                         .commands()}
    assert set(enabled) == expected
    assert {f"{u}.service" for u in enabled} <= {p.name for p in UNIT_DIR.glob("*.service")}
    order = [next(i for i, c in enumerate(commands) if marker in c)
             for marker in (" join ", "daemon-reload", "enable --now")]
    assert order == sorted(order)
    assert {"containerd", "runc", "containernetworking-plugins", "nftables"} <= set(load("node.yaml")["packages"])


def test_node_builds_and_imports_the_node_images_after_containerd_starts() -> None:
    commands = runcmd("node.yaml")
    imports = [i for i, c in enumerate(commands) if "images import --base-name localhost/$image" in c]
    assert len(imports) == 1, commands
    line = commands[imports[0]]
    assert "for image in pause busybox" in line and "build-$image.sh" in line
    assert imports[0] > next(i for i, c in enumerate(commands) if "enable --now" in c)
    assert {"busybox-static", "umoci", "gcc", "libc6-dev"} <= set(load("node.yaml")["packages"])

