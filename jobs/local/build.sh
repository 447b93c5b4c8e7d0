#!/usr/bin/env bash
# Install dependencies, then configure and build wgf (Release) in
# $WGF_BUILD_DIR (default <repo>/build). Runnable from any directory.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/env.sh
source "$here/env.sh"

"$here/setup.sh"
cmake -S "$WGF_ROOT" -B "$WGF_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
cmake --build "$WGF_BUILD_DIR" -j "$(nproc)"
