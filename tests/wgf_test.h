/* What every C unit test shares: a failure count and EXPECT, which prints the failing condition's
   place and a message and counts it; the test's exit status is then nonzero (STYLE.md item 4). */
#ifndef WGF_TEST_H
#define WGF_TEST_H

#include <petscsys.h>

static PetscInt nfail = 0;

#define EXPECT(cond, ...) \
  do { \
    if (!(cond)) { \
      nfail++; \
      PetscCall(PetscPrintf(PETSC_COMM_SELF, "FAIL %s:%d: ", __FILE__, __LINE__)); \
      PetscCall(PetscPrintf(PETSC_COMM_SELF, __VA_ARGS__)); \
      PetscCall(PetscPrintf(PETSC_COMM_SELF, "\n")); \
    } \
  } while (0)

/* The verdict of a test run on every rank of comm: prints (rank 0) passed/FAILED with the
   failures of each rank; *total = their sum, for the exit status. Collective. */
static inline PetscErrorCode wgf_test_summary(MPI_Comm comm, PetscInt *total)
{
  PetscMPIInt size, rank;
  PetscInt   *all;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCall(PetscMalloc1(size, &all));
  PetscCallMPI(MPI_Allgather(&nfail, 1, MPIU_INT, all, 1, MPIU_INT, comm));
  *total = 0;
  for (PetscMPIInt r = 0; r < size; r++) *total += all[r];
  if (rank == 0) {
    PetscCall(PetscPrintf(PETSC_COMM_SELF, "%s on %d ranks: failures per rank", *total ? "FAILED" : "passed", (int)size));
    for (PetscMPIInt r = 0; r < size; r++) PetscCall(PetscPrintf(PETSC_COMM_SELF, " %" PetscInt_FMT, all[r]));
    PetscCall(PetscPrintf(PETSC_COMM_SELF, "\n"));
  }
  PetscCall(PetscFree(all));
  PetscFunctionReturn(0);
}

/* max |a - b| / max(|b|_max, tiny): the mixed tolerance of STYLE.md item 3 */
static inline PetscReal relerr(PetscInt n, const PetscReal *a, const PetscReal *b)
{
  PetscReal e = 0, m = 0;
  for (PetscInt i = 0; i < n; i++) {
    e = PetscMax(e, PetscAbsReal(a[i] - b[i]));
    m = PetscMax(m, PetscAbsReal(b[i]));
  }
  return e / PetscMax(m, 1e-300);
}

/* log |det| of a D x D matrix by Gaussian elimination with partial pivoting (M is
   overwritten) */
static inline PetscReal logabsdet(PetscInt D, PetscReal *M)
{
  PetscReal s = 0;
  for (PetscInt c = 0; c < D; c++) {
    PetscInt p = c;
    for (PetscInt r = c + 1; r < D; r++)
      if (PetscAbsReal(M[r * D + c]) > PetscAbsReal(M[p * D + c])) p = r;
    for (PetscInt k = 0; k < D; k++) {
      PetscReal t  = M[c * D + k];
      M[c * D + k] = M[p * D + k];
      M[p * D + k] = t;
    }
    s += PetscLogReal(PetscAbsReal(M[c * D + c]));
    for (PetscInt r = c + 1; r < D; r++) {
      PetscReal f = M[r * D + c] / M[c * D + c];
      for (PetscInt k = c; k < D; k++) M[r * D + k] -= f * M[c * D + k];
    }
  }
  return s;
}

#endif
