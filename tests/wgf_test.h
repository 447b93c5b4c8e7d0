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

#endif
