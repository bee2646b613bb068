#!/usr/bin/env bash
# Idempotent set-up of everything aiokube needs on a Debian 12 machine:
# system packages (etcd, containerd, runc, CNI plugins, busybox-static, umoci, nftables; cloud-init only for its
# `cloud-init schema` check of deploy/cloud-init; wrk only as bench/bench_api.py's create load generator)
# and the project's Python environment in .venv. Safe to run again; does nothing already done.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

packages=(etcd-server containerd runc containernetworking-plugins busybox-static umoci nftables iptables iproute2 gcc libc6-dev cloud-init haproxy wrk)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian starts the packaged services; aiokube runs its own private instances instead (haproxy: only the
  # API server load balancer of an HA control plane runs it, with its own config; deploy/README.md).
  for svc in etcd containerd haproxy; do
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
  # cloud-init is here only for its schema validator. Installed just now, it configured nothing on this machine,
  # so keep it from acting at the next boot (cloud-init's documented off switch, and its units disabled).
  if [[ " ${missing[*]} " == *" cloud-init "* ]]; then
    $SUDO touch /etc/cloud/cloud-init.disabled
    for svc in cloud-init-local cloud-init cloud-config cloud-final; do
      $SUDO systemctl disable "$svc" >/dev/null 2>&1 || true
    done
  fi
fi

stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "creating the Python environment in .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  if ! .venv/bin/pip install -q -e '.[dev]' --config-settings editable_mode=compat > .venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    exit 1
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi
