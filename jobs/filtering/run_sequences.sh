#!/usr/bin/env bash
# The filtering study (MATH.md secs 8-10; README "Nonlinear filtering"): for each seed, its own
# observation sequence (simulated from the seed: a hidden path observed at 0.5, ..., 4.5), a wgf
# run of the protocol, the Chang-Cooper ground truth and the bootstrap particle filter with 10000
# and 50000 particles, each with its wall time. The SymKL of each to Chang-Cooper at t = 5 is in
# its /history. A folder of wgf that holds checkpoints is continued with -restart; a baseline file
# that exists is kept.
#
#   jobs/filtering/run_sequences.sh SEED... [-- extra wgf options]
#
# Environment: OUT (default runs/filtering), NP ranks (default 2), OPTS the protocol (default
# input/filtering.opts), TAG a suffix of the wgf folders (e.g. _paper with
# OPTS=input/filtering_paper.opts), PF the particle counts of the particle filter (default
# "10000 50000"), WGF_BUILD_DIR (default build).
# Tabulate with: python3 jobs/filtering/table.py $OUT
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../local/env.sh"
[[ $# -ge 1 ]] || { echo "usage: $0 SEED... [-- extra wgf options]" >&2; exit 2; }
seeds=()
while [[ $# -gt 0 && $1 != -- ]]; do seeds+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
OUT=${OUT:-runs/filtering}; NP=${NP:-2}; TAG=${TAG:-}; PF=${PF:-10000 50000}
OPTS=${OPTS:-$WGF_ROOT/input/filtering.opts}
export OMPI_MCA_hwloc_base_binding_policy=${OMPI_MCA_hwloc_base_binding_policy:-none}
mkdir -p "$OUT"
for s in "${seeds[@]}"; do
  cc="$OUT/cc_s$s.h5"
  [[ -f $cc ]] || mpiexec -n 1 "$WGF_BUILD_DIR/bin/wgf-baseline" -options_file "$OPTS" -seed "$s" -method changcooper -output "$cc" >"$OUT/cc_s$s.log" 2>&1
  for n in $PF; do
    pf="$OUT/pf${n}_s$s.h5"
    [[ -f $pf ]] || mpiexec -n "$NP" "$WGF_BUILD_DIR/bin/wgf-baseline" -options_file "$OPTS" -seed "$s" -method pf -pf_particles "$n" -output "$pf" >"$OUT/pf${n}_s$s.log" 2>&1
  done
  dir="$OUT/wgf_s$s$TAG"
  restart=()
  compgen -G "$dir/ckpt_*.h5" >/dev/null && restart=(-restart "$dir")
  echo "== sequence $s: $dir ${restart[*]}"
  start=$(date +%s)
  mpiexec -n "$NP" "$WGF_BUILD_DIR/bin/wgf" -options_file "$OPTS" -seed "$s" -out_dir "$dir" "${restart[@]}" "$@" >>"$dir.log" 2>&1
  echo "wall $(( $(date +%s) - start )) s on $NP rank(s)" >>"$dir.log"
done
