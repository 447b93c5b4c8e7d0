#!/usr/bin/env bash
# Build, then run the CTest suite. Extra arguments are passed to ctest;
# the exit status is ctest's.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/env.sh
source "$here/env.sh"

"$here/build.sh"
exec ctest --test-dir "$WGF_BUILD_DIR" --output-on-failure -j 2 "$@"
