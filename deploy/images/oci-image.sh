#!/bin/bash
# Build a one-layer OCI image tarball from a directory of files, without a registry.
#   oci-image.sh ROOTFS_SRC TAG OUT_TAR CMD...
# ROOTFS_SRC is copied as the image's root filesystem; TAG becomes the image's ref name (so
# `ctr images import --base-name localhost/NAME` yields localhost/NAME:TAG).
set -euo pipefail
src=$1 tag=$2 out=$3; shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umoci init --layout "$work/oci"
umoci new --image "$work/oci:$tag"
umoci unpack --image "$work/oci:$tag" "$work/bundle" >/dev/null
cp -a "$src/." "$work/bundle/rootfs/"
umoci repack --image "$work/oci:$tag" "$work/bundle"
config_args=()
for arg in "$@"; do config_args+=(--config.cmd "$arg"); done
umoci config --image "$work/oci:$tag" "${config_args[@]}"
umoci gc --layout "$work/oci"
tar -C "$work/oci" -cf "$out.tmp" .
mv "$out.tmp" "$out"
