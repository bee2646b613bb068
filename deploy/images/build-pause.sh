#!/bin/bash
# Build localhost/pause:3.9 (a static C pause binary) as an OCI tarball: build-pause.sh OUT_TAR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
gcc -static -Os -o "$root/pause" "$here/pause.c"
strip "$root/pause" || true
bash "$here/oci-image.sh" "$root" 3.9 "$out" /pause
