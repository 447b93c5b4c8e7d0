#!/usr/bin/env bash
# The posterior study of one data set over several random 80/20 splits (MATH.md sec. 8; README
# "Posterior sampling"): for each seed, the split (split.py), the exact posterior by HMC
# (reference_sampler.py, once per split), a wgf run of the protocol, and the comparison of the two
# (compare.py) with wgf's wall time.
#
#   jobs/posterior/run_dataset.sh NAME SEED... [-- extra wgf options]
#
# NAME is a file of DATA (default ../shared/data beside the repository): NAME.h5.
# Environment: OUT (default runs/posterior), NP ranks of wgf (default 2), OPTS the protocol
# (default input/blr.opts), TAG a suffix of the wgf folders and results (e.g. _paper with
# OPTS=input/blr_paper.opts), WGF_BUILD_DIR (default build).
# Results: $OUT/data/NAME_s<SEED>_{train,test,ref}.h5, $OUT/wgf_NAME_s<SEED>$TAG/ (checkpoints; a
# folder that holds some is continued with -restart) and its .log, $OUT/cmp_NAME_s<SEED>$TAG.json.
# Tabulate with: python3 jobs/posterior/table.py $OUT
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../local/env.sh"
[[ $# -ge 2 ]] || { echo "usage: $0 NAME SEED... [-- extra wgf options]" >&2; exit 2; }
name=$1; shift
seeds=()
while [[ $# -gt 0 && $1 != -- ]]; do seeds+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
DATA=${DATA:-$WGF_ROOT/../shared/data}; OUT=${OUT:-runs/posterior}; NP=${NP:-2}; TAG=${TAG:-}
OPTS=${OPTS:-$WGF_ROOT/input/blr.opts}
export OMPI_MCA_hwloc_base_binding_policy=${OMPI_MCA_hwloc_base_binding_policy:-none}
# a python with numpy and h5py (PYTHON, else the system's, else the first on PATH)
py=${PYTHON:-}
for c in /usr/bin/python3 python3; do
  [[ -z $py ]] && "$c" -c "import numpy, h5py" 2>/dev/null && py=$c
done
[[ -n $py ]] || { echo "$0: no python3 with numpy and h5py (set PYTHON)" >&2; exit 2; }
[[ -f $DATA/$name.h5 ]] || { echo "$0: no data set $DATA/$name.h5" >&2; exit 2; }
mkdir -p "$OUT/data"
for s in "${seeds[@]}"; do
  base="$OUT/data/${name}_s$s"
  [[ -f ${base}_train.h5 ]] || "$py" "$here/split.py" "$DATA/$name.h5" "$s" "$OUT/data"
  [[ -f ${base}_ref.h5 ]] || "$py" "$here/reference_sampler.py" "${base}_train.h5" "${base}_ref.h5" --test "${base}_test.h5" --seed "$s" >"${base}_ref.log"
  dir="$OUT/wgf_${name}_s$s$TAG"
  restart=()
  compgen -G "$dir/ckpt_*.h5" >/dev/null && restart=(-restart "$dir")
  echo "== $name, split $s: $dir ${restart[*]}"
  start=$(date +%s)
  mpiexec -n "$NP" "$WGF_BUILD_DIR/bin/wgf" -options_file "$OPTS" -seed "$s" -blr_data "${base}_train.h5" -blr_test "${base}_test.h5" \
    -out_dir "$dir" "${restart[@]}" "$@" >>"$dir.log" 2>&1
  wall=$(( $(date +%s) - start ))
  echo "wall $wall s on $NP rank(s)" >>"$dir.log"
  last=$(ls "$dir"/ckpt_[0-9][0-9][0-9][0-9].h5 | sort | tail -1)
  "$py" "$here/compare.py" "$last" "${base}_ref.h5" "${base}_test.h5" --wall "$wall" --ranks "$NP" --json "$OUT/cmp_${name}_s$s$TAG.json"
done
