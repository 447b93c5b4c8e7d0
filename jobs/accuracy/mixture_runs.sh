#!/usr/bin/env bash
# The convergence-to-a-mixture study (MATH.md sec. 8, README "Convergence to a Gaussian mixture"):
# for dimension D and each seed (= one random mixture), a wgf run of input/mixture_paper_d<D>.opts
# and the Euler-Maruyama baseline (wgf-baseline -method em, 50000 particles) on the same mixture.
#
#   jobs/accuracy/mixture_runs.sh D SEED... [-- extra wgf options]
#
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
opts="$WGF_ROOT/input/mixture_paper_d$D.opts"
[[ -f $opts ]] || { echo "$0: no protocol $opts" >&2; exit 2; }
mkdir -p "$OUT"
for s in "${seeds[@]}"; do
  dir="$OUT/wgf_d${D}_s${s}${TAG}"
  restart=()
  compgen -G "$dir/ckpt_*.h5" >/dev/null && restart=(-restart "$dir")
  echo "== D = $D, seed $s: $dir ${restart[*]}"
  start=$(date +%s)
  mpiexec -n "$NP" "$WGF_BUILD_DIR/bin/wgf" -options_file "$opts" -seed "$s" -out_dir "$dir" "${restart[@]}" "$@" >>"$dir.log" 2>&1
  echo "wall $(( $(date +%s) - start )) s on $NP rank(s)" >>"$dir.log"
  em="$OUT/em_d${D}_s${s}.h5"
  if [[ $EM == 1 && ! -f $em ]]; then
    start=$(date +%s)
    mpiexec -n "$NP" "$WGF_BUILD_DIR/bin/wgf-baseline" -options_file "$opts" -seed "$s" -mixture_problem_file "$dir/ckpt_0001.h5" \
      -method em -em_particles 50000 -eval_every 40 -output "$em" >"${em%.h5}.log" 2>&1
    echo "wall $(( $(date +%s) - start )) s on $NP rank(s)" >>"${em%.h5}.log"
  fi
done
