/* One JKO step = one ICNN trained by data-parallel SGD (MATH.md secs 1 and 6): the identity
   pretraining of map 0, then for each step the loss
     J(psi) = E_{x ~ rho_k} [ 1/2 |grad psi(x) - x|^2 + h V(grad psi(x)) - (h/beta) log det Hess psi(x) ]
   minimised by Adam over fresh minibatches of rho_k, with one MPI_Allreduce of the gradient per
   iteration. */
#ifndef WGF_JKO_H
#define WGF_JKO_H

#include <wgf/flow.h>
#include <wgf/potential.h>
#include <hdf5.h>
#include <signal.h>

typedef struct _p_JKO *JKO;

/* What one step (or the pretraining) did: the mean loss terms over the last iteration's global
   batch, the wall time and the rate. */
typedef struct {
  PetscInt  step, iters;
  PetscBool stopped; /* the step was interrupted by the stop flag (its state was checkpointed) */
  PetscReal loss, w2, potential, entropy; /* loss = w2 + potential + entropy (sec. 1, times h) */
  PetscReal seconds, its_per_second;
} JKOStepInfo;

/* Called inside a step after `iter` of its iterations (every -ckpt_every_iters, and when the stop
   flag is raised), to save what JKOGetState() returns. step is the step being computed (k + 1). */
typedef PetscErrorCode (*JKOCheckpointFn)(void *ctx, PetscInt step, PetscInt iter);

PetscErrorCode JKOCreate(MPI_Comm, JKO *);
PetscErrorCode JKODestroy(JKO *);
PetscErrorCode JKOSetFlow(JKO, Flow);
PetscErrorCode JKOSetPotential(JKO, Potential);
PetscErrorCode JKOSetSeed(JKO, uint32_t);
PetscErrorCode JKOGetNetwork(JKO, ICNN *);
PetscErrorCode JKOGetSettings(JKO, PetscInt *, PetscReal *, PetscReal *, PetscInt *);
PetscErrorCode JKOGetStartSteps(JKO, PetscInt *);
PetscErrorCode JKOFormatStartSteps(JKO, char[], size_t);
PetscErrorCode JKOGetStepSize(JKO, PetscInt, PetscReal *);
PetscErrorCode JKOGetTime(JKO, PetscInt, PetscReal *);
PetscErrorCode JKOSetFromOptions(JKO);
PetscErrorCode JKOSetUp(JKO);
PetscErrorCode JKOPretrain(JKO, JKOStepInfo *);
PetscErrorCode JKOStepSolve(JKO, JKOStepInfo *);
PetscErrorCode JKOView(JKO, PetscViewer);
PetscErrorCode JKOWriteConfig(JKO, hid_t);
PetscErrorCode JKOSetCheckpoint(JKO, PetscInt, JKOCheckpointFn, void *);
PetscErrorCode JKOSetStopFlag(JKO, volatile sig_atomic_t *);
PetscErrorCode JKOGetState(JKO, PetscInt *, const PetscReal **, const PetscReal **, const PetscReal **);
PetscErrorCode JKOSetResume(JKO, PetscInt, const PetscReal[], const PetscReal[], const PetscReal[]);

#endif
