/* Potentials V of the Fokker-Planck equation d rho/dt = div(rho grad V) + (1/beta) Lap rho
   (MATH.md secs 1 and 8): V and grad V for a batch of points. */
#ifndef WGF_POTENTIAL_H
#define WGF_POTENTIAL_H

#include <petscsys.h>

typedef struct _p_Potential *Potential;

typedef enum { POTENTIAL_QUADRATIC, POTENTIAL_MIXTURE } PotentialType;

PetscErrorCode PotentialCreateQuadratic(MPI_Comm, PetscInt, const PetscReal[], const PetscReal[], Potential *);
PetscErrorCode PotentialCreateMixture(MPI_Comm, PetscInt, PetscInt, const PetscReal[], const PetscReal[], PetscReal, Potential *);
PetscErrorCode PotentialGetType(Potential, PotentialType *);
PetscErrorCode PotentialGetDimension(Potential, PetscInt *);
PetscErrorCode PotentialEvaluate(Potential, PetscInt, const PetscReal[], PetscReal[], PetscReal[]);
PetscErrorCode PotentialView(Potential, PetscViewer);
PetscErrorCode PotentialDestroy(Potential *);

#endif
