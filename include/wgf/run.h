/* The driver of a wgf run (ARCHITECTURE.md, "run"): pretraining, the JKO steps, the evaluation
   cadence, checkpoints, restarts and stop signals, for any problem of the registry (problem.h);
   it knows no problem by name. The /history columns are the driver's (step, t, the loss terms),
   the problem's metrics, and the wall time of the step. */
#ifndef WGF_RUN_H
#define WGF_RUN_H

#include <petscsys.h>

typedef struct _p_Run *Run;

PetscErrorCode RunCreate(MPI_Comm, Run *);
PetscErrorCode RunSetFromOptions(Run);
PetscErrorCode RunSolve(Run);
PetscErrorCode RunDestroy(Run *);

#endif
