/* Accuracy measures (MATH.md secs 7-8): Gaussian laws (the exact OU solution), KL estimators,
   the energy distance. */
#ifndef WGF_METRICS_H
#define WGF_METRICS_H

#include <petscsys.h>
#include <wgf/rng.h>

/* A Gaussian N(mean, cov) in dimension D with its Cholesky factor (lower, row-major) and
   log det cov, ready for sampling and log densities. */
typedef struct {
  PetscInt   dim;
  PetscReal *mean;   /* [D] */
  PetscReal *cov;    /* [D][D] */
  PetscReal *chol;   /* [D][D] lower triangular, cov = chol chol^T */
  PetscReal  logdet; /* log det cov */
} Gaussian;

/* A probability measure that can be sampled and whose log density can be evaluated: the model
   of a run (a flow at step k, a KDE of particles) or the reference of a problem's metrics (an exact
   law, a stationary law). sample draws n points x [n][D] with the global indices first ...
   first + n - 1 of the counter generator's stream (seed, purpose, step, iter), and logp [n] (may
   be NULL) = log density at them (-inf outside the support); logdensity gives logp [n] at x [n][D] and, if converged is not
   NULL, whether each value could be computed (an inversion that did not converge: logp NaN).
   Both are local (Not Collective). destroy frees ctx (may be NULL). */
typedef struct {
  PetscInt dim;
  void    *ctx;
  PetscErrorCode (*sample)(void *ctx, uint32_t seed, RNGPurpose purpose, uint32_t step, uint32_t iter, PetscInt first, PetscInt n, PetscReal x[], PetscReal logp[]);
  PetscErrorCode (*logdensity)(void *ctx, PetscInt n, const PetscReal x[], PetscReal logp[], PetscBool converged[]);
  PetscErrorCode (*destroy)(void *ctx);
} Measure;

/* A change of coordinates theta = T(u) (MATH.md sec. 9): a flow may run in coordinates u of its
   own (where rho_0, V and the maps live) while everything a user reads (samples, densities,
   files of samples) is in the problem's theta. forward: theta [n][D] = T(u [n][D]) (theta may be
   u, in place) and, if logdet [n] is not NULL, log |det DT(u)|; inverse: u = T^{-1}(theta) (u
   may be theta). destroy frees ctx (may be NULL). A zeroed struct is the identity.
   passive: the last passive coordinates of u are stationary under the flow, because V is
   |u_p|^2 / 2 plus a function of the others and rho_0 is a product with N(0, I) in them: the
   maps leave them in place (ICNNSetPassive), which is the exact JKO step (MATH.md sec. 1). */
typedef struct {
  PetscInt passive;
  void    *ctx;
  PetscErrorCode (*forward)(void *ctx, PetscInt n, const PetscReal u[], PetscReal theta[], PetscReal logdet[]);
  PetscErrorCode (*inverse)(void *ctx, PetscInt n, const PetscReal theta[], PetscReal u[]);
  PetscErrorCode (*destroy)(void *ctx);
} Coordinates;

/* The five numbers MetricsCompare returns, in this order (the /history metric columns). */
enum { METRICS_KL_MODEL_REF, METRICS_KL_REF_MODEL, METRICS_SYMKL, METRICS_ENERGY, METRICS_NOT_CONVERGED, METRICS_NCOMPARE };

PetscErrorCode MeasureDestroy(Measure *);
PetscErrorCode CoordinatesDestroy(Coordinates *);
PetscErrorCode MeasureCreateGaussian(const Gaussian *, Measure *);
PetscErrorCode MetricsCompare(MPI_Comm, PetscInt, uint32_t, uint32_t, const Measure *, const Measure *, const char[], PetscReal[]);
PetscErrorCode GaussianCreate(PetscInt, const PetscReal[], const PetscReal[], Gaussian *);
PetscErrorCode GaussianDestroy(Gaussian *);
PetscErrorCode GaussianLogDensity(const Gaussian *, PetscInt, const PetscReal[], PetscReal[]);
PetscErrorCode GaussianTransform(const Gaussian *, PetscInt, const PetscReal[], PetscReal[]);
PetscErrorCode MetricsOULaw(PetscInt, const PetscReal[], const PetscReal[], const PetscReal[], const PetscReal[], PetscReal, PetscReal, PetscReal[], PetscReal[]);
PetscErrorCode MetricsMeanDifference(MPI_Comm, PetscInt, const PetscReal[], const PetscReal[], PetscReal *);
PetscErrorCode MetricsEnergyDistance(MPI_Comm, PetscInt, PetscInt, const PetscReal[], PetscInt, const PetscReal[], PetscReal *);

#endif
