/* Bayesian logistic regression (MATH.md sec. 8): the data files of -problem blr and the posterior
   predictive, shared by the problem type (src/problems/blr.c) and wgf-predict. A parameter is
   theta = (w_1, ..., w_d, log alpha): D = d + 1 columns, in that order everywhere (particles,
   samples, files). */
#ifndef WGF_BLR_H
#define WGF_BLR_H

#include <petscsys.h>

/* A data file: /X (n x d, float64) and /y (n, +1 / -1, any integer or float type). */
typedef struct {
  PetscInt   n, d;
  PetscInt   start, nlocal; /* the rows held: [start, start + nlocal) (all of them, or this rank's) */
  PetscReal *X; /* [nlocal][d]; NULL when only the description was read (a checkpoint's /problem) */
  PetscReal *y; /* [nlocal] of +1 / -1 (NULL when nlocal = 0) */
  PetscBool  labels; /* the file has /y: the same on every rank, whatever rows it holds */
  char       path[PETSC_MAX_PATH_LEN];
  char       sha256[65]; /* of the file, hex */
} BLRData;

PetscErrorCode BLRDataRead(MPI_Comm, const char[], const char[], PetscBool, PetscBool, BLRData *);
PetscErrorCode BLRDataDestroy(BLRData *);
PetscErrorCode BLRPredictAccumulate(PetscInt, PetscInt, const PetscReal[], PetscInt, const PetscReal[], PetscReal[], PetscReal[]);
PetscErrorCode BLRScore(PetscInt, PetscInt, const PetscReal[], const PetscReal[], const PetscReal[], PetscReal *, PetscReal *);

#endif
