#include <wgf/bench_comm.h>
#include <petsctime.h>

/* Calls made before any timing (connection set-up, first-touch of the buffers). */
#define BENCH_COMM_WARMUP 5
/* Largest growth of the number of calls from one calibration round to the next, so that one
   unusually fast round cannot make the next one run for much longer than asked. */
#define BENCH_COMM_MAX_GROWTH 100

/* Times reps calls of the allreduce on every rank; elapsed is the slowest rank's wall time. */
static PetscErrorCode bench_allreduce_batch(MPI_Comm comm, PetscReal *buf, PetscMPIInt count, PetscInt64 reps, PetscReal *elapsed)
{
  PetscLogDouble t0, t1;
  PetscReal      local;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Barrier(comm));
  PetscCall(PetscTime(&t0));
  for (PetscInt64 i = 0; i < reps; i++) PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, buf, count, MPIU_REAL, MPI_SUM, comm));
  PetscCall(PetscTime(&t1));
  local = (PetscReal)(t1 - t0);
  PetscCallMPI(MPI_Allreduce(&local, elapsed, 1, MPIU_REAL, MPI_MAX, comm));
  PetscFunctionReturn(0);
}

/*
  WGFBenchAllreduce - the mean wall time of one
    MPI_Allreduce(MPI_IN_PLACE, buf, count, MPIU_REAL, MPI_SUM, comm),
  the call by which the training sums its gradient once per iteration (jko.c; there count is
  the number of parameters + 5).

  Input:
    comm        - the communicator to time it on
    count       - the number of reals summed per call (>= 0; the same on every rank)
    min_seconds - the timed batch of calls lasts at least this long (> 0; the same on every rank)
  Output:
    seconds_per_call - the slowest rank's wall time of the batch divided by its number of calls

  After BENCH_COMM_WARMUP untimed calls, batches of reps calls are timed, reps growing from 1
  (to about 1.2 min_seconds / elapsed times the last reps, at least doubling, at most
  BENCH_COMM_MAX_GROWTH times), until a batch lasts min_seconds; the result is that batch's. Every
  decision uses the slowest rank's time (MPI_MAX), so all ranks make the same number of calls and
  none waits forever. The whole call usually takes 1.2 to 1.5 min_seconds, at most about 4. The
  buffer holds zeros, which the sum keeps at zero: repeated in-place sums of other values would
  grow without bound (to inf, or through subnormals that some processors add slowly).

  Collective
*/
PetscErrorCode WGFBenchAllreduce(MPI_Comm comm, PetscInt count, PetscReal min_seconds, PetscReal *seconds_per_call)
{
  PetscReal   *buf, elapsed = 0, mine[4], most[4];
  PetscMPIInt  n;
  PetscInt64   reps = 1;

  PetscFunctionBegin;
  PetscCheck(seconds_per_call, comm, PETSC_ERR_ARG_NULL, "WGFBenchAllreduce: seconds_per_call must not be NULL");
  PetscCheck(count >= 0, comm, PETSC_ERR_ARG_OUTOFRANGE, "WGFBenchAllreduce: count %" PetscInt_FMT " must be >= 0", count);
  PetscCheck(min_seconds > 0 && !PetscIsInfOrNanReal(min_seconds), comm, PETSC_ERR_ARG_OUTOFRANGE, "WGFBenchAllreduce: min_seconds %g must be a finite number > 0", (double)min_seconds);
  /* Different counts would make the allreduce itself erroneous, different min_seconds would not
     by themselves hang (the decisions use the slowest rank's time) but make the figure
     meaningless: both must agree everywhere. */
  mine[0] = (PetscReal)count, mine[1] = -(PetscReal)count, mine[2] = min_seconds, mine[3] = -min_seconds;
  PetscCallMPI(MPI_Allreduce(mine, most, 4, MPIU_REAL, MPI_MAX, comm));
  PetscCheck(most[0] == -most[1], comm, PETSC_ERR_ARG_WRONG, "WGFBenchAllreduce: count differs between ranks (from %" PetscInt_FMT " to %" PetscInt_FMT ")", (PetscInt)-most[1], (PetscInt)most[0]);
  PetscCheck(most[2] == -most[3], comm, PETSC_ERR_ARG_WRONG, "WGFBenchAllreduce: min_seconds differs between ranks (from %g to %g)", (double)-most[3], (double)most[2]);
  PetscCall(PetscMPIIntCast(count, &n));

  PetscCall(PetscCalloc1(count ? count : 1, &buf));
  for (int i = 0; i < BENCH_COMM_WARMUP; i++) PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, buf, n, MPIU_REAL, MPI_SUM, comm));
  for (;;) {
    PetscCall(bench_allreduce_batch(comm, buf, n, reps, &elapsed));
    if (elapsed >= min_seconds) break;
    /* the same elapsed on every rank, so the same next reps */
    PetscReal grow = elapsed > 0 ? 1.2 * min_seconds / elapsed : BENCH_COMM_MAX_GROWTH;
    grow = PetscMax(2, PetscMin(BENCH_COMM_MAX_GROWTH, grow));
    reps = (PetscInt64)PetscCeilReal(grow * (PetscReal)reps);
  }
  *seconds_per_call = elapsed / (PetscReal)reps;
  PetscCall(PetscFree(buf));
  PetscFunctionReturn(0);
}
