# shellcheck shell=bash
# Shared environment for the jobs/local scripts; source it, don't run it.
# Defines WGF_ROOT (repo root) and WGF_BUILD_DIR (absolute build directory)
# and exports the MPI/OpenBLAS runtime settings.

WGF_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WGF_BUILD_DIR=${WGF_BUILD_DIR:-$WGF_ROOT/build}
[[ $WGF_BUILD_DIR == /* ]] || WGF_BUILD_DIR=$PWD/$WGF_BUILD_DIR
export WGF_ROOT WGF_BUILD_DIR

# Open MPI refuses to start as root unless explicitly allowed.
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# One BLAS thread per MPI rank unless the caller chose otherwise.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
