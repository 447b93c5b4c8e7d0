#!/usr/bin/env bash
# Install the Debian 12 packages wgf needs. Idempotent: apt is skipped
# entirely when everything is already installed. Works as root (no sudo
# needed) or as a normal user with sudo.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libopenmpi-dev openmpi-bin libopenblas-dev libhdf5-openmpi-dev petsc-dev
  hdf5-tools python3 python3-numpy python3-h5py python3-matplotlib
)

# Collect the packages dpkg does not report as fully installed.
missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "setup.sh: all ${#packages[@]} packages already installed; nothing to do."
  exit 0
fi

# Run apt as root directly, otherwise through sudo (env passes
# DEBIAN_FRONTEND through sudo, which resets the environment).
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "setup.sh: error: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

echo "setup.sh: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
