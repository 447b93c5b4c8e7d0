# shellcheck shell=bash
# The scheduler-independent part of the batch scripts jobs/slurm/wgf.sbatch and jobs/pbs/wgf.pbs;
# source it (WGF_ROOT set to the repository root), don't run it.
#
#   wgf_job_setup NAME   the environment (jobs/local/env.sh) and the settings below, with defaults
#   wgf_job_run          runs wgf once: afresh with -out_dir WGF_OUT, or with -restart WGF_OUT when
#                        WGF_OUT holds a complete checkpoint; SIGUSR1 or SIGTERM received by this
#                        shell is forwarded to mpirun as SIGUSR1 (wgf then checkpoints and exits 0);
#                        sets WGF_JOB_RC (mpirun's exit status), WGF_JOB_SIGNAL (USR1, TERM or
#                        empty: what this shell received) and WGF_JOB_STATUS (the line of
#                        jobs/study/wgf_status.py: finished | partial ... | empty)
#   wgf_job_want_more TERM_CONTINUES COUNT
#                        whether the run should go on in a new job (returns 0) or not; prints why
#
# Settings (environment variables; relative paths are relative to the folder the job starts in):
#   WGF_OUT          checkpoint folder                       (default: $PWD/runs/<job name>)
#   WGF_OPTS         wgf options, split at blanks            (default: the paper's OU protocol, D = 12:
#                    "-options_file $WGF_ROOT/input/ou_paper.opts -ou_dim 12"); no -out_dir here
#   WGF_NP           rank count, given to mpirun as -n       (default: the scheduler's; nproc without one)
#   WGF_MPIRUN       the launcher                            (default: mpirun)
#   WGF_MPIRUN_ARGS  more launcher options, e.g. "--bind-to core"
#   WGF_EXE          the solver                              (default: $WGF_BUILD_DIR/bin/wgf)
#   WGF_WALLTIME     the job's time limit (seconds, or [[D-]HH:]MM:SS); with it the script signals
#                    itself WGF_STOP_BEFORE seconds (default 300) before the limit
#   WGF_MAX_REQUEUES the most times a run is requeued/resubmitted (default 20)
#   WGF_PYTHON       python3 for wgf_status.py (default: the first of /usr/bin/python3 and python3
#                    that has h5py; without h5py the helper reads the files with h5dump)
# A file named norequeue in WGF_OUT stops any requeue or resubmission.

wgf_job_log() { printf 'wgf-job [%s]: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*"; }

# Seconds in a time given as S, MM:SS, HH:MM:SS or D-HH:MM:SS; empty if it is none of those.
wgf_job_seconds() {
  local t=$1 d=0 s=0 f
  [[ $t =~ ^([0-9]+)-(.*)$ ]] && { d=${BASH_REMATCH[1]}; t=${BASH_REMATCH[2]}; }
  [[ $t =~ ^[0-9]+(:[0-9]+){0,2}$ ]] || return 0
  IFS=: read -r -a f <<< "$t"
  for x in "${f[@]}"; do s=$((s * 60 + 10#$x)); done
  echo $((d * 86400 + s))
}

wgf_job_setup() {
  local name=${1:-wgf} py
  # shellcheck source=SCRIPTDIR/../local/env.sh
  source "$WGF_ROOT/jobs/local/env.sh"   # WGF_BUILD_DIR, Open MPI as root, OPENBLAS_NUM_THREADS
  export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
  WGF_OUT=${WGF_OUT:-$PWD/runs/$name}
  [[ $WGF_OUT == /* ]] || WGF_OUT=$PWD/$WGF_OUT
  WGF_OPTS=${WGF_OPTS-"-options_file $WGF_ROOT/input/ou_paper.opts -ou_dim 12"}
  WGF_EXE=${WGF_EXE:-$WGF_BUILD_DIR/bin/wgf}
  WGF_MPIRUN=${WGF_MPIRUN:-mpirun}
  WGF_MPIRUN_ARGS=${WGF_MPIRUN_ARGS:-}
  WGF_STOP_BEFORE=${WGF_STOP_BEFORE:-300}
  WGF_MAX_REQUEUES=${WGF_MAX_REQUEUES:-20}
  if [[ -z ${WGF_PYTHON:-} ]]; then
    for py in /usr/bin/python3 python3; do
      if command -v "$py" > /dev/null && "$py" -c 'import h5py' 2> /dev/null; then WGF_PYTHON=$py; break; fi
    done
    WGF_PYTHON=${WGF_PYTHON:-python3}
  fi
  export WGF_OUT WGF_OPTS WGF_EXE WGF_MPIRUN WGF_MPIRUN_ARGS WGF_STOP_BEFORE WGF_MAX_REQUEUES WGF_PYTHON
  [[ -x $WGF_EXE ]] || { wgf_job_log "ERROR: no solver at $WGF_EXE (build it: cmake --build $WGF_BUILD_DIR, or set WGF_EXE)"; return 2; }
}

# The state of WGF_OUT: the line of wgf_status.py; fails when it cannot tell.
wgf_job_status() {
  local line rc=0
  line=$("$WGF_PYTHON" "$WGF_ROOT/jobs/study/wgf_status.py" "$WGF_OUT" -v) || rc=$?
  case $rc in
    0 | 3 | 4) echo "$line" ;;
    *) wgf_job_log "ERROR: jobs/study/wgf_status.py $WGF_OUT failed (status $rc): $line" >&2; return 1 ;;
  esac
}

_wgf_job_on_signal() {
  wgf_job_log "received SIG$1: forwarding SIGUSR1 to mpirun (pid ${WGF_JOB_PID:-not started}) so that wgf checkpoints and stops"
  [[ -z $WGF_JOB_SIGNAL || $1 == USR1 ]] && WGF_JOB_SIGNAL=$1
  [[ -n $WGF_JOB_PID ]] && kill -USR1 "$WGF_JOB_PID" 2> /dev/null
  return 0
}

wgf_job_run() {
  local status launcher=() opts=() extra=() restart=() delay wall
  WGF_JOB_SIGNAL="" WGF_JOB_PID="" WGF_JOB_RC="" WGF_JOB_SHELL=$$
  trap '_wgf_job_on_signal USR1' USR1
  trap '_wgf_job_on_signal TERM' TERM
  mkdir -p "$WGF_OUT" || return 2
  status=$(wgf_job_status) || return 2
  if [[ $status == empty ]]; then
    "$WGF_PYTHON" "$WGF_ROOT/jobs/study/wgf_status.py" "$WGF_OUT" --stash || return 2
    wgf_job_log "no complete checkpoint in $WGF_OUT: starting afresh"
  else
    restart=(-restart "$WGF_OUT")
    wgf_job_log "$WGF_OUT holds a checkpoint ($status): continuing with -restart $WGF_OUT"
  fi
  read -r -a launcher <<< "$WGF_MPIRUN"
  read -r -a extra <<< "$WGF_MPIRUN_ARGS"
  read -r -a opts <<< "$WGF_OPTS"
  [[ -n ${WGF_NP:-} ]] && launcher+=(-n "$WGF_NP")
  local cmd=("${launcher[@]}" "${extra[@]}" "$WGF_EXE" "${opts[@]}" -out_dir "$WGF_OUT" "${restart[@]}")
  if [[ -n $WGF_JOB_SIGNAL ]]; then # asked to stop before anything ran
    WGF_JOB_RC=0 WGF_JOB_STATUS=$status
    return 0
  fi
  WGF_JOB_TIMER=""
  if [[ -n ${WGF_WALLTIME:-} ]]; then
    wall=$(wgf_job_seconds "$WGF_WALLTIME")
    if [[ -n $wall ]]; then
      delay=$((wall - WGF_STOP_BEFORE - SECONDS))
      if ((delay < 1)); then
        wgf_job_log "ERROR: no time to run: WGF_WALLTIME=$WGF_WALLTIME, WGF_STOP_BEFORE=$WGF_STOP_BEFORE s, $SECONDS s gone"
        return 2
      fi
      wgf_job_log "time limit ${WGF_WALLTIME}: this script sends itself SIGUSR1 in $delay s (WGF_STOP_BEFORE=$WGF_STOP_BEFORE s before the limit)"
      (
        trap 'kill "$sp" 2> /dev/null; exit 0' TERM
        sleep "$delay" & sp=$!
        wait "$sp" && kill -USR1 "$WGF_JOB_SHELL" 2> /dev/null
      ) &
      WGF_JOB_TIMER=$!
    else
      wgf_job_log "WARNING: WGF_WALLTIME=$WGF_WALLTIME is not a time; no timer"
    fi
  fi
  wgf_job_log "on $(hostname): ${cmd[*]}"
  "${cmd[@]}" &
  WGF_JOB_PID=$!
  [[ -n $WGF_JOB_SIGNAL ]] && kill -USR1 "$WGF_JOB_PID" 2> /dev/null # arrived between the two lines above
  # wait returns early (status > 128) whenever a trapped signal arrives: wait again until mpirun is gone
  while :; do
    wait "$WGF_JOB_PID"
    WGF_JOB_RC=$?
    ((WGF_JOB_RC > 128)) && kill -0 "$WGF_JOB_PID" 2> /dev/null && continue
    break
  done
  WGF_JOB_PID=""
  [[ -n $WGF_JOB_TIMER ]] && kill "$WGF_JOB_TIMER" 2> /dev/null
  WGF_JOB_STATUS=$(wgf_job_status) || return 2
  wgf_job_log "mpirun exited with status $WGF_JOB_RC${WGF_JOB_SIGNAL:+ after SIG$WGF_JOB_SIGNAL}; $WGF_OUT: $WGF_JOB_STATUS"
  return 0
}

# wgf_job_want_more TERM_CONTINUES COUNT: 0 when the run stopped early and should go on in a new
# job: not finished, and stopped by SIGUSR1 (or by SIGTERM when TERM_CONTINUES is yes), or wgf
# exited 0 unfinished (a stop signal that reached the ranks directly); and COUNT (requeues so
# far) < WGF_MAX_REQUEUES and no WGF_OUT/norequeue. A failure of wgf without a signal never
# continues: it would fail again.
wgf_job_want_more() {
  local term_continues=$1 count=${2:-0}
  [[ ${WGF_JOB_STATUS%% *} == finished ]] && return 1
  if [[ $WGF_JOB_SIGNAL == TERM && $term_continues != yes ]]; then
    wgf_job_log "stopped by SIGTERM (a cancellation or a preemption): not continued; submit again to continue from the checkpoint"
    return 1
  fi
  if [[ -z $WGF_JOB_SIGNAL && $WGF_JOB_RC != 0 ]]; then
    wgf_job_log "wgf failed (status $WGF_JOB_RC) without being asked to stop: not continued (see the messages above)"
    return 1
  fi
  if [[ -e $WGF_OUT/norequeue ]]; then
    wgf_job_log "not continued: $WGF_OUT/norequeue exists"
    return 1
  fi
  if ((count >= WGF_MAX_REQUEUES)); then
    wgf_job_log "not continued: already continued $count times (WGF_MAX_REQUEUES=$WGF_MAX_REQUEUES)"
    return 1
  fi
  return 0
}
