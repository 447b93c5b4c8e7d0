/* The measure along the chain: rho_0 and the maps grad psi_1, ..., grad psi_k (MATH.md secs 1, 5).
   Samples of rho_k are x_0 ~ rho_0 pushed through the maps; log densities follow the chain; the
   density at an arbitrary point comes from inverting the maps by damped Newton. */
#ifndef WGF_FLOW_H
#define WGF_FLOW_H

#include <wgf/icnn.h>
#include <wgf/metrics.h>
#include <wgf/rng.h>

typedef struct _p_Flow *Flow;

/* Observations on the flow (MATH.md sec. 9, filtering): the measure at step k is the push of
   nu_k = rho_0 W_k / Z_k with log W_k(x_0) = sum over the observations j with steps[j] <= k of
   loglik(j, x_{steps[j]}), x_i the point's position after maps 1..i (in the flow's coordinates).
   steps [nobs], strictly increasing, is PetscMalloc'd and taken over with the struct; loglik gives
   ll [n] at n points x [n][D] (Not Collective); destroy frees ctx (may be NULL). */
typedef struct {
  PetscInt  nobs;
  PetscInt *steps;
  void     *ctx;
  PetscErrorCode (*loglik)(void *ctx, PetscInt j, PetscInt n, const PetscReal x[], PetscReal ll[]);
  PetscErrorCode (*destroy)(void *ctx);
} FlowObservations;

PetscErrorCode FlowCreate(MPI_Comm, Flow *);
PetscErrorCode FlowDestroy(Flow *);
PetscErrorCode FlowSetFromOptions(Flow);
PetscErrorCode FlowSetInitial(Flow, Measure *);
PetscErrorCode FlowSetInitialGaussian(Flow, PetscInt, const PetscReal[], const PetscReal[]);
PetscErrorCode FlowGetInitial(Flow, const Measure **);
PetscErrorCode FlowSetCoordinates(Flow, Coordinates *);
PetscErrorCode FlowHasCoordinates(Flow, PetscBool *);
PetscErrorCode FlowGetPassive(Flow, PetscInt *);
PetscErrorCode FlowToProblem(Flow, PetscInt, PetscReal[], PetscReal[]);
PetscErrorCode FlowSetObservations(Flow, FlowObservations *, PetscInt, uint32_t);
PetscErrorCode FlowHasObservations(Flow, PetscBool *);
PetscErrorCode FlowGetNormalizer(Flow, PetscInt, PetscReal *, PetscReal *, PetscReal *);
PetscErrorCode FlowSetNetwork(Flow, ICNN);
PetscErrorCode FlowAddMap(Flow, const PetscReal[]);
PetscErrorCode FlowGetNumMaps(Flow, PetscInt *);
PetscErrorCode FlowGetMap(Flow, PetscInt, const PetscReal **);
PetscErrorCode FlowPush(Flow, PetscInt, PetscInt, PetscInt, PetscReal[], PetscReal[]);
PetscErrorCode FlowPushSamples(Flow, PetscInt, PetscInt, PetscInt, PetscReal[]);
PetscErrorCode FlowSample(Flow, PetscInt, uint32_t, RNGPurpose, uint32_t, uint32_t, PetscInt, PetscInt, PetscReal[], PetscReal[], PetscReal[]);
PetscErrorCode FlowInvertMap(Flow, PetscInt, PetscInt, const PetscReal[], PetscReal[], PetscReal[], PetscBool[]);
PetscErrorCode FlowGetMeasure(Flow, PetscInt, Measure *);
PetscErrorCode FlowLogDensity(Flow, PetscInt, PetscInt, const PetscReal[], PetscReal[], PetscBool[]);

#endif
