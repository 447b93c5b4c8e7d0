static const char help[] = "Unit tests of WGFBenchAllreduce, the allreduce timer of wgf-bench (src/bench_comm.c).\n";

/* Timings cannot be checked against a value; what can: the call lasts at least min_seconds, the
   figure is finite, positive and the same on every rank (all ranks made the same calls), and
   bad or rank-dependent arguments stop every rank with an error instead of hanging. */
#include "wgf_test.h"
#include <wgf/bench_comm.h>
#include <petsctime.h>

static PetscErrorCode check_timing(MPI_Comm comm, PetscInt count)
{
  const PetscReal min_seconds = 0.02;
  PetscReal       t, tmax, tmin;
  PetscLogDouble  t0, t1;

  PetscFunctionBegin;
  PetscCall(PetscTime(&t0));
  PetscCall(WGFBenchAllreduce(comm, count, min_seconds, &t));
  PetscCall(PetscTime(&t1));
  EXPECT(t1 - t0 >= min_seconds, "count %" PetscInt_FMT ": the call took %g s, less than min_seconds %g", count, (double)(t1 - t0), (double)min_seconds);
  EXPECT(t > 0 && !PetscIsInfOrNanReal(t) && t <= t1 - t0, "count %" PetscInt_FMT ": %g s per call, outside (0, %g]", count, (double)t, (double)(t1 - t0));
  PetscCallMPI(MPI_Allreduce(&t, &tmax, 1, MPIU_REAL, MPI_MAX, comm));
  PetscCallMPI(MPI_Allreduce(&t, &tmin, 1, MPIU_REAL, MPI_MIN, comm));
  EXPECT(tmax == tmin, "count %" PetscInt_FMT ": ranks report different times (%g to %g)", count, (double)tmin, (double)tmax);
  PetscFunctionReturn(0);
}

static PetscErrorCode check_errors(MPI_Comm comm)
{
  PetscMPIInt    rank, size;
  PetscReal      t;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));
  ierr = WGFBenchAllreduce(comm, -1, 0.01, &t);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "count -1 gave error code %d", (int)ierr);
  ierr = WGFBenchAllreduce(comm, 10, 0, &t);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "min_seconds 0 gave error code %d", (int)ierr);
  ierr = WGFBenchAllreduce(comm, 10, 0.01, NULL);
  EXPECT(ierr == PETSC_ERR_ARG_NULL, "a NULL result gave error code %d", (int)ierr);
  /* on one rank nothing can differ; on more, every rank must return the error (this test would
     hang, and time out, if one rank went on to the allreduce) */
  ierr = WGFBenchAllreduce(comm, 10 + rank, 0.01, &t);
  EXPECT(ierr == (size > 1 ? PETSC_ERR_ARG_WRONG : 0), "a count of 10 + rank on %d ranks gave error code %d", size, (int)ierr);
  PetscCall(PetscPopErrorHandler());
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  for (PetscInt count = 0; count <= 100000; count = count ? 100 * count : 1) PetscCall(check_timing(PETSC_COMM_WORLD, count));
  PetscCall(check_errors(PETSC_COMM_WORLD));
  if (nfail) PetscCall(PetscPrintf(PETSC_COMM_SELF, "test_bench_comm: %" PetscInt_FMT " failure(s)\n", nfail));
  else PetscCall(PetscPrintf(PETSC_COMM_WORLD, "test_bench_comm: all checks passed\n"));
  PetscCall(PetscFinalize());
  return nfail ? 1 : 0;
}
