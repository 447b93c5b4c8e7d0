/* Accuracy measures (MATH.md secs 7-8): Gaussian laws (the exact OU solution), KL estimators,
   the energy distance. */
#ifndef WGF_METRICS_H
#define WGF_METRICS_H

#include <petscsys.h>

/* A Gaussian N(mean, cov) in dimension D with its Cholesky factor (lower, row-major) and
   log det cov, ready for sampling and log densities. */
typedef struct {
  PetscInt   dim;
  PetscReal *mean;   /* [D] */
  PetscReal *cov;    /* [D][D] */
  PetscReal *chol;   /* [D][D] lower triangular, cov = chol chol^T */
  PetscReal  logdet; /* log det cov */
} Gaussian;

PetscErrorCode GaussianCreate(PetscInt, const PetscReal[], const PetscReal[], Gaussian *);
PetscErrorCode GaussianDestroy(Gaussian *);
PetscErrorCode GaussianLogDensity(const Gaussian *, PetscInt, const PetscReal[], PetscReal[]);
PetscErrorCode GaussianTransform(const Gaussian *, PetscInt, const PetscReal[], PetscReal[]);
PetscErrorCode MetricsOULaw(PetscInt, const PetscReal[], const PetscReal[], const PetscReal[], const PetscReal[], PetscReal, PetscReal, PetscReal[], PetscReal[]);
PetscErrorCode MetricsMeanDifference(MPI_Comm, PetscInt, const PetscReal[], const PetscReal[], PetscReal *);
PetscErrorCode MetricsEnergyDistance(MPI_Comm, PetscInt, PetscInt, const PetscReal[], PetscInt, const PetscReal[], PetscReal *);

#endif
