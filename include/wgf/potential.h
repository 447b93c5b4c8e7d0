/* Potentials V of the Fokker-Planck equation d rho/dt = div(rho grad V) + (1/beta) Lap rho
   (MATH.md secs 1 and 8): V and grad V for a batch of points. */
#ifndef WGF_POTENTIAL_H
#define WGF_POTENTIAL_H

#include <petscviewer.h>

typedef struct _p_Potential *Potential;

typedef enum { POTENTIAL_QUADRATIC, POTENTIAL_MIXTURE, POTENTIAL_SHELL } PotentialType;

/* A potential defined by its owner (a problem type): evaluate gives v [n] and grad [n][D] at x
   [n][D] (either may be NULL); setiteration (may be NULL) is told which (step, iteration) of the
   training the next evaluations belong to, so that a stochastic potential (a data minibatch, MATH.md
   sec. 8) draws the same minibatch on every rank; view prints one line; destroy frees ctx. */
typedef struct {
  void *ctx;
  PetscErrorCode (*evaluate)(void *ctx, PetscInt n, const PetscReal x[], PetscReal v[], PetscReal grad[]);
  PetscErrorCode (*setiteration)(void *ctx, PetscInt step, PetscInt iter);
  PetscErrorCode (*view)(void *ctx, PetscViewer viewer);
  PetscErrorCode (*destroy)(void *ctx);
} PotentialShellOps;

PetscErrorCode PotentialCreateQuadratic(MPI_Comm, PetscInt, const PetscReal[], const PetscReal[], Potential *);
PetscErrorCode PotentialCreateMixture(MPI_Comm, PetscInt, PetscInt, const PetscReal[], const PetscReal[], PetscReal, Potential *);
PetscErrorCode PotentialCreateShell(MPI_Comm, PetscInt, const PotentialShellOps *, Potential *);
PetscErrorCode PotentialSetIteration(Potential, PetscInt, PetscInt);
PetscErrorCode PotentialGetType(Potential, PotentialType *);
PetscErrorCode PotentialGetDimension(Potential, PetscInt *);
PetscErrorCode PotentialEvaluate(Potential, PetscInt, const PetscReal[], PetscReal[], PetscReal[]);
PetscErrorCode PotentialView(Potential, PetscViewer);
PetscErrorCode PotentialDestroy(Potential *);

#endif
