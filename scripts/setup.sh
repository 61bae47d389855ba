#!/usr/bin/env bash
# One-step set-up on Debian 12 / Node 20: system libraries and tools, then the
# npm dependencies, the native addon (prebuild or source build) and dist/.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build needs: libhdf5 (dynamic), libzstd + xxhash (static), cmake, a C++17 compiler.
# Runtime/test needs: h5dump, xxhsum, Debian's torch/numpy/h5py under /usr/bin/python3, git, git-lfs
# (the git extension's tests and bench/git.ts compare against it), and Debian's chromium, which the web UI's
# tests (test/ui) drive headless through playwright-core (playwright's own browser download needs the internet).
PKGS=(build-essential cmake pkg-config libhdf5-dev libzstd-dev libxxhash-dev hdf5-tools xxhash
      python3-torch python3-numpy python3-h5py git git-lfs chromium)
# The S3 tests and bench/remote.ts run a single-node Ceph with a RADOS Gateway (scripts/ceph.sh).
CEPH_PKGS=(ceph-mon ceph-osd ceph-common)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# radosgw with its recommended packages (as Debian ships it); the daemons without theirs.
ceph_missing=()
for p in radosgw "${CEPH_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || ceph_missing+=("$p")
done
if [ ${#ceph_missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${ceph_missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq radosgw >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${CEPH_PKGS[@]}" >/dev/null
fi

# onnxruntime-node (a test-only dependency) would fetch GPU add-ons from the internet; its CPU binaries ship in the package.
ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund
