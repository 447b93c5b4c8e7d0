#!/usr/bin/env bash
# Build, then run the main job: wgf on every core (WGF_NP overrides the rank count). Without
# arguments wgf runs its embedded default (a short Ornstein-Uhlenbeck diffusion in D = 2);
# arguments are passed to wgf and it runs in the current folder. The default run works in a new
# folder build/runs/<date-time>, so a second run never meets the checkpoints of the first.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/env.sh
source "$here/env.sh"

WGF_NP=${WGF_NP:-$(nproc)}
WGF_PROG=$WGF_BUILD_DIR/bin/wgf
[[ $WGF_NP =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: bad WGF_NP=$WGF_NP" >&2; exit 2; }

"$here/build.sh"

# Allow more ranks than cores only when actually asked for.
mpi_opts=()
if ((WGF_NP > $(nproc))); then
  mpi_opts+=(--oversubscribe)
fi

if (($# == 0)); then
  rundir=$WGF_BUILD_DIR/runs/$(date +%Y%m%d-%H%M%S)-$$
  mkdir -p "$rundir"
  cd "$rundir"
  echo "run.sh: $WGF_NP rank(s), the embedded default protocol, output in $rundir/wgf_out"
fi
exec mpiexec -n "$WGF_NP" "${mpi_opts[@]}" "$WGF_PROG" "$@"
