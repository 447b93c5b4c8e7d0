/* The protocols of the paper (MATH.md sec. 8), one file each under src/problems/. A problem
   builds rho_0 and V, knows its exact or reference law where there is one, and writes what
   defines it into the /problem group of every output file. */
#ifndef WGF_PROBLEMS_H
#define WGF_PROBLEMS_H

#include <wgf/flow.h>
#include <wgf/potential.h>
#include <hdf5.h>

/* Ornstein-Uhlenbeck: V(x) = 1/2 (x - m)^T A (x - m), rho_0 = N(mu0, S0). */
typedef struct _p_OUProblem *OUProblem;

PetscErrorCode OUProblemCreate(MPI_Comm, uint32_t, OUProblem *);
PetscErrorCode OUProblemLoad(MPI_Comm, const char[], OUProblem *);
PetscErrorCode OUProblemSame(OUProblem, OUProblem, PetscBool *, const char **);
PetscErrorCode OUProblemDestroy(OUProblem *);
PetscErrorCode OUProblemGetPotential(OUProblem, Potential *);
PetscErrorCode OUProblemGetInitial(OUProblem, PetscInt *, const PetscReal **, const PetscReal **);
PetscErrorCode OUProblemExactLaw(OUProblem, PetscReal, PetscReal, Gaussian *);
PetscErrorCode OUProblemWrite(OUProblem, hid_t);
PetscErrorCode OUProblemView(OUProblem, PetscViewer);

#endif
