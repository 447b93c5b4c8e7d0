#!/usr/bin/env bash
# Build, then run the main job: wgf on every core (WGF_NP overrides the rank count). Without
# arguments wgf runs its embedded default (a short Ornstein-Uhlenbeck diffusion in D = 2) in a new
# folder build/runs/<date-time>, so a second run never meets the checkpoints of the first, and
# jobs/plot/plot_run.py draws its pictures into wgf_out/plots; arguments are passed to wgf, which
# then runs in the current folder.
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
  mpiexec -n "$WGF_NP" "${mpi_opts[@]}" "$WGF_PROG"
  # Debian's python3 has matplotlib, numpy and h5py (setup.sh); a pyenv python3 first on PATH may not
  py=python3
  [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
  "$py" "$WGF_ROOT/jobs/plot/plot_run.py" wgf_out --wgf-eval "$WGF_BUILD_DIR/bin/wgf-eval"
  echo "run.sh: pictures in $rundir/wgf_out/plots"
  exit 0
fi
exec mpiexec -n "$WGF_NP" "${mpi_opts[@]}" "$WGF_PROG" "$@"
