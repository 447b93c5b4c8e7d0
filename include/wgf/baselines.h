/* The paper's comparison methods (MATH.md sec. 10), run on the same problems as wgf (problem.h)
   and measured by the same metrics at the same times: Euler-Maruyama particles with a Gaussian
   KDE (-method em); for filtering, the Chang-Cooper density on a grid (-method changcooper) and the
   bootstrap particle filter (-method pf; kernels in filter.h). MPI-parallel over particles; every random number is drawn by global particle
   index from the counter generator, so a run does not depend on the number of ranks. */
#ifndef WGF_BASELINES_H
#define WGF_BASELINES_H

#include <wgf/problem.h>

typedef struct _p_Baseline *Baseline;

PetscErrorCode BaselineCreate(MPI_Comm, Baseline *);
PetscErrorCode BaselineSetFromOptions(Baseline);
PetscErrorCode BaselineSolve(Baseline);
PetscErrorCode BaselineDestroy(Baseline *);

PetscErrorCode MeasureCreateKDE(MPI_Comm, PetscInt, PetscInt, const PetscReal[], PetscBool, Measure *);
PetscErrorCode BaselineEulerMaruyama(Potential, PetscReal, PetscReal, PetscInt, uint32_t, uint32_t, PetscInt, PetscInt, PetscReal[]);

#endif
