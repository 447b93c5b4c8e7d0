#!/usr/bin/env bash
# Build, then run the main job under mpiexec. Extra arguments are passed
# to the program. Override the rank count with WGF_NP.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/env.sh
source "$here/env.sh"

# The main job: change these two lines to switch program / rank count
# (later: WGF_PROG=$WGF_BUILD_DIR/bin/wgf with WGF_NP=<cores>).
WGF_NP=${WGF_NP:-1}
WGF_PROG=$WGF_BUILD_DIR/bin/wgf-bench
[[ $WGF_NP =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: bad WGF_NP=$WGF_NP" >&2; exit 2; }

"$here/build.sh"

# Allow more ranks than cores only when actually asked for.
mpi_opts=()
if ((WGF_NP > $(nproc))); then
  mpi_opts+=(--oversubscribe)
fi

exec mpiexec -n "$WGF_NP" "${mpi_opts[@]}" "$WGF_PROG" "$@"
