#!/usr/bin/env bash
# The convergence-to-a-mixture study (MATH.md sec. 8, README "Convergence to a Gaussian mixture"):
# for dimension D and each seed (= one random mixture), a wgf run of input/mixture_paper_d<D>.opts
# and the Euler-Maruyama baseline (wgf-baseline -method em, 50000 particles) on the same mixture.
#
#   jobs/accuracy/mixture_runs.sh D SEED... [-- extra wgf options]
#   PROBLEMS=DIR jobs/accuracy/mixture_runs.sh D RUN... [-- ...]   the paper's own mixtures
#
# With PROBLEMS, RUN N takes its mixture from DIR/mx_d<D>_r<N>.h5 (written by
# mixture_reference_problems.py) instead of the seed, and the folders are named _r<N>.
# Environment: OUT (default runs/mixture) the folder of the results; NP ranks per run (default 1);
# TAG a suffix of the wgf folder names (e.g. _w64 with -- -icnn_widths 64,64); EM=0 skips the
# baseline; WGF_BUILD_DIR (default build). Folders: $OUT/wgf_d<D>_s<SEED>$TAG (checkpoints; a folder
# that already holds some is continued with -restart, so a study longer than a job or a session
# goes on where it stopped), $OUT/em_d<D>_s<SEED>.h5 (the baseline, run on the wgf run's mixture:
# its first checkpoint is the -mixture_problem_file), and a .log beside each.
# Tabulate with: python3 jobs/accuracy/mixture_table.py $OUT
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../local/env.sh"
[[ $# -ge 2 ]] || { echo "usage: $0 D SEED... [-- extra wgf options]" >&2; exit 2; }
D=$1; shift
seeds=()
while [[ $# -gt 0 && $1 != -- ]]; do seeds+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
OUT=${OUT:-runs/mixture}; NP=${NP:-1}; TAG=${TAG:-}; EM=${EM:-1}
# Open MPI binds the ranks of every mpiexec to the first cores: two studies started side by side
# would share one core. Leave the placement to the kernel.
export OMPI_MCA_hwloc_base_binding_policy=${OMPI_MCA_hwloc_base_binding_policy:-none}
opts="$WGF_ROOT/input/mixture_paper_d$D.opts"
[[ -f $opts ]] || { echo "$0: no protocol $opts" >&2; exit 2; }
mkdir -p "$OUT"
for s in "${seeds[@]}"; do
  name=s$s; problem=()
  if [[ -n ${PROBLEMS:-} ]]; then
    name=r$s; problem=(-mixture_problem_file "$PROBLEMS/mx_d${D}_r$s.h5")
  fi
  dir="$OUT/wgf_d${D}_${name}${TAG}"
  restart=()
  compgen -G "$dir/ckpt_*.h5" >/dev/null && restart=(-restart "$dir")
  echo "== D = $D, $name: $dir ${restart[*]}"
  start=$(date +%s)
  mpiexec -n "$NP" "$WGF_BUILD_DIR/bin/wgf" -options_file "$opts" -seed "$s" "${problem[@]}" -out_dir "$dir" "${restart[@]}" "$@" >>"$dir.log" 2>&1
  echo "wall $(( $(date +%s) - start )) s on $NP rank(s)" >>"$dir.log"
  em="$OUT/em_d${D}_${name}.h5"
  if [[ $EM == 1 && ! -f $em ]]; then
    start=$(date +%s)
    mpiexec -n "$NP" "$WGF_BUILD_DIR/bin/wgf-baseline" -options_file "$opts" -seed "$s" -mixture_problem_file "$dir/ckpt_0001.h5" \
      -method em -em_particles 50000 -eval_every 40 -output "$em" >"${em%.h5}.log" 2>&1
    echo "wall $(( $(date +%s) - start )) s on $NP rank(s)" >>"${em%.h5}.log"
  fi
done
