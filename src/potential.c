/* Potentials V of the Fokker-Planck equation (MATH.md secs 1 and 8): value and gradient for a
   batch of points.

   Layout, for a batch of n points in dimension D:
     x     [n][D]   points (row-major)
     v     [n]      V(x_b)
     grad  [n][D]   grad V(x_b)
   Quadratic (Ornstein-Uhlenbeck, sec. 8):  A [D][D] symmetric positive definite, m [D].
   Mixture (sec. 8): K centres mu [K][D], log weights logw [K] normalised to sum_i w_i = 1, one
   std sigma.
   The quadratic is one dgemm over the batch (ARCHITECTURE.md, "Batched kernels"); the mixture
   is plain loops (its cost is n K D, with no matrix product to batch). */
#include <wgf/potential.h>
#include <wgf/log_events.h>
#include <petscviewer.h>
#include <petscblaslapack.h>
#include <cblas.h>
#include <math.h>

struct _p_Potential {
  MPI_Comm      comm;
  PotentialType type;
  PetscInt      dim;

  /* quadratic */
  PetscReal *A, *m; /* [D][D] (symmetrised copy), [D] */

  /* mixture */
  PetscInt   K;
  PetscReal *mu, *logw; /* [K][D], [K] with log sum_i exp(logw_i) = 0 */
  PetscReal  sigma, logZ; /* logZ = (D/2) log(2 pi sigma^2), the Gaussian normalisation */

  /* shell: the owner's functions */
  PotentialShellOps shell;

  /* workspace grown on demand by PotentialEvaluate: centred points [cap][D] and, when the
     caller does not want the gradient, its own gradient block [cap][D]; the mixture's K logits */
  PetscInt   cap;
  PetscReal *xc, *gw, *logit;
};

static PetscErrorCode potential_new(MPI_Comm comm, PotentialType type, PetscInt D, Potential *V)
{
  Potential p = NULL;

  PetscFunctionBegin;
  PetscCall(WGFLogEventsRegister());
  PetscCall(PetscNew(&p));
  p->comm = comm;
  p->type = type;
  p->dim  = D;
  *V      = p;
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- life cycle */

/*
  PotentialCreateQuadratic - the Ornstein-Uhlenbeck potential V(x) = 1/2 (x - m)^T A (x - m),
  grad V(x) = A (x - m) (MATH.md sec. 8), whose stationary law at beta = 1 is N(m, A^{-1}).

  Input: D >= 1, A [D][D] row-major, symmetric to a relative 1e-12 of max |A_ij| and positive
  definite, m [D]; every entry finite.
  Output: V.

  Note: A and m are copied; the caller keeps its arrays. A is stored as (A + A^T)/2, so that the
  gradient is exactly that of the value.

  Collective
*/
PetscErrorCode PotentialCreateQuadratic(MPI_Comm comm, PetscInt D, const PetscReal A[], const PetscReal m[], Potential *V)
{
  Potential    p = NULL;
  PetscReal    amax = 0, *L;
  PetscBLASInt nD, info;

  PetscFunctionBegin;
  PetscCheck(V != NULL, comm, PETSC_ERR_ARG_NULL, "PotentialCreateQuadratic: output pointer is NULL");
  *V = NULL;
  PetscCheck(D >= 1, comm, PETSC_ERR_ARG_OUTOFRANGE, "PotentialCreateQuadratic: dimension D = %" PetscInt_FMT " must be >= 1", D);
  PetscCheck(A != NULL, comm, PETSC_ERR_ARG_NULL, "PotentialCreateQuadratic: matrix A is NULL");
  PetscCheck(m != NULL, comm, PETSC_ERR_ARG_NULL, "PotentialCreateQuadratic: centre m is NULL");
  for (PetscInt i = 0; i < D; i++) {
    PetscCheck(!PetscIsInfOrNanReal(m[i]), comm, PETSC_ERR_FP, "PotentialCreateQuadratic: m[%" PetscInt_FMT "] = %g is not finite", i, (double)m[i]);
    for (PetscInt j = 0; j < D; j++) {
      PetscCheck(!PetscIsInfOrNanReal(A[i * D + j]), comm, PETSC_ERR_FP, "PotentialCreateQuadratic: A[%" PetscInt_FMT "][%" PetscInt_FMT "] = %g is not finite", i, j, (double)A[i * D + j]);
      amax = PetscMax(amax, PetscAbsReal(A[i * D + j]));
    }
  }
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < i; j++)
      PetscCheck(PetscAbsReal(A[i * D + j] - A[j * D + i]) <= 1e-12 * amax, comm, PETSC_ERR_ARG_WRONG, "PotentialCreateQuadratic: A is not symmetric: A[%" PetscInt_FMT "][%" PetscInt_FMT "] = %g but A[%" PetscInt_FMT "][%" PetscInt_FMT "] = %g (tolerance 1e-12 max|A| = %g)", i, j, (double)A[i * D + j], j, i, (double)A[j * D + i], (double)(1e-12 * amax));

  /* positive definite iff the Cholesky factorisation succeeds; the workspace is freed before the
     check so that a failure leaks nothing */
  PetscCall(PetscBLASIntCast(D, &nD));
  PetscCall(PetscMalloc1(D * D, &L));
  PetscCall(PetscArraycpy(L, A, D * D));
  PetscCallBLAS("LAPACKpotrf", LAPACKpotrf_("L", &nD, L, &nD, &info));
  PetscCall(PetscFree(L));
  PetscCheck(info >= 0, comm, PETSC_ERR_LIB, "PotentialCreateQuadratic: dpotrf argument %d is illegal", -(int)info);
  PetscCheck(info == 0, comm, PETSC_ERR_ARG_WRONG, "PotentialCreateQuadratic: A is not positive definite (Cholesky failed at column %d of %" PetscInt_FMT ")", (int)info, D);

  PetscCall(potential_new(comm, POTENTIAL_QUADRATIC, D, &p));
  PetscCall(PetscMalloc2(D * D, &p->A, D, &p->m));
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < D; j++) p->A[i * D + j] = 0.5 * (A[i * D + j] + A[j * D + i]);
  PetscCall(PetscArraycpy(p->m, m, D));
  *V = p;
  PetscFunctionReturn(0);
}

/*
  PotentialCreateMixture - V(x) = -log sum_i w_i N(x; mu_i, sigma^2 I), with the Gaussian
  normalisation (2 pi sigma^2)^{-D/2} (MATH.md sec. 8), so that exp(-V) is the mixture density.

  Input: D >= 1, K >= 1, w [K] positive finite weights (normalised here; they need not sum to 1),
  mu [K][D] finite centres, sigma > 0 finite.
  Output: V.

  Note: w and mu are copied; the caller keeps its arrays.

  Collective
*/
PetscErrorCode PotentialCreateMixture(MPI_Comm comm, PetscInt D, PetscInt K, const PetscReal w[], const PetscReal mu[], PetscReal sigma, Potential *V)
{
  Potential p = NULL;
  PetscReal wmax = 0, wsum = 0;

  PetscFunctionBegin;
  PetscCheck(V != NULL, comm, PETSC_ERR_ARG_NULL, "PotentialCreateMixture: output pointer is NULL");
  *V = NULL;
  PetscCheck(D >= 1, comm, PETSC_ERR_ARG_OUTOFRANGE, "PotentialCreateMixture: dimension D = %" PetscInt_FMT " must be >= 1", D);
  PetscCheck(K >= 1, comm, PETSC_ERR_ARG_OUTOFRANGE, "PotentialCreateMixture: number of centres K = %" PetscInt_FMT " must be >= 1", K);
  PetscCheck(w != NULL, comm, PETSC_ERR_ARG_NULL, "PotentialCreateMixture: weights w are NULL");
  PetscCheck(mu != NULL, comm, PETSC_ERR_ARG_NULL, "PotentialCreateMixture: centres mu are NULL");
  PetscCheck(sigma > 0 && !PetscIsInfOrNanReal(sigma), comm, PETSC_ERR_ARG_OUTOFRANGE, "PotentialCreateMixture: sigma = %g must be finite and > 0", (double)sigma);
  for (PetscInt i = 0; i < K; i++) {
    PetscCheck(w[i] > 0 && !PetscIsInfOrNanReal(w[i]), comm, PETSC_ERR_ARG_OUTOFRANGE, "PotentialCreateMixture: weight w[%" PetscInt_FMT "] = %g must be finite and > 0", i, (double)w[i]);
    wmax = PetscMax(wmax, w[i]);
    for (PetscInt d = 0; d < D; d++) PetscCheck(!PetscIsInfOrNanReal(mu[i * D + d]), comm, PETSC_ERR_FP, "PotentialCreateMixture: centre mu[%" PetscInt_FMT "][%" PetscInt_FMT "] = %g is not finite", i, d, (double)mu[i * D + d]);
  }

  PetscCall(potential_new(comm, POTENTIAL_MIXTURE, D, &p));
  p->K     = K;
  p->sigma = sigma;
  /* (D/2) log(2 pi sigma^2), MATH.md sec. 8 */
  p->logZ = 0.5 * D * PetscLogReal(2 * PETSC_PI * sigma * sigma);
  PetscCall(PetscMalloc3(K * D, &p->mu, K, &p->logw, K, &p->logit));
  PetscCall(PetscArraycpy(p->mu, mu, K * D));
  /* log(w_i / sum_j w_j), with the sum taken over w_j / max w so that it cannot overflow */
  for (PetscInt i = 0; i < K; i++) wsum += w[i] / wmax;
  for (PetscInt i = 0; i < K; i++) p->logw[i] = PetscLogReal(w[i] / wmax) - PetscLogReal(wsum);
  *V = p;
  PetscFunctionReturn(0);
}

/*
  PotentialCreateShell - a potential whose value and gradient come from ops (copied; ops->ctx is
  owned by the potential from now on and freed by ops->destroy), in dimension D >= 1: the
  extension point of the problem types (src/problems/), e.g. the stochastic potential of the
  posterior. PotentialEvaluate still checks its inputs and outputs for non-finite numbers.

  Collective
*/
PetscErrorCode PotentialCreateShell(MPI_Comm comm, PetscInt D, const PotentialShellOps *ops, Potential *V)
{
  PetscFunctionBegin;
  PetscCheck(V != NULL && ops != NULL && ops->evaluate != NULL, comm, PETSC_ERR_ARG_NULL, "PotentialCreateShell: output pointer, ops or ops->evaluate is NULL");
  PetscCheck(D >= 1, comm, PETSC_ERR_ARG_OUTOFRANGE, "PotentialCreateShell: dimension D = %" PetscInt_FMT " must be >= 1", D);
  PetscCall(potential_new(comm, POTENTIAL_SHELL, D, V));
  (*V)->shell = *ops;
  PetscFunctionReturn(0);
}

/*
  PotentialSetIteration - the (step, iteration) of the training the next evaluations belong to.
  Only a stochastic shell potential uses it (its data minibatch); the others ignore it.

  Not Collective
*/
PetscErrorCode PotentialSetIteration(Potential V, PetscInt step, PetscInt iter)
{
  PetscFunctionBegin;
  if (V->type == POTENTIAL_SHELL && V->shell.setiteration) PetscCall(V->shell.setiteration(V->shell.ctx, step, iter));
  PetscFunctionReturn(0);
}

/*
  PotentialDestroy - frees the potential; accepts NULL and leaves NULL.

  Collective
*/
PetscErrorCode PotentialDestroy(Potential *V)
{
  PetscFunctionBegin;
  if (!V || !*V) PetscFunctionReturn(0);
  if ((*V)->shell.destroy) PetscCall((*V)->shell.destroy((*V)->shell.ctx));
  PetscCall(PetscFree2((*V)->A, (*V)->m));
  PetscCall(PetscFree3((*V)->mu, (*V)->logw, (*V)->logit));
  PetscCall(PetscFree2((*V)->xc, (*V)->gw));
  PetscCall(PetscFree(*V));
  PetscFunctionReturn(0);
}

/* PotentialGetType - POTENTIAL_QUADRATIC, POTENTIAL_MIXTURE or POTENTIAL_SHELL. Not Collective */
PetscErrorCode PotentialGetType(Potential V, PotentialType *type)
{
  PetscFunctionBegin;
  PetscCheck(V != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "PotentialGetType: potential is NULL");
  PetscCheck(type != NULL, V->comm, PETSC_ERR_ARG_NULL, "PotentialGetType: output pointer is NULL");
  *type = V->type;
  PetscFunctionReturn(0);
}

/* PotentialGetDimension - the dimension D of the points. Not Collective */
PetscErrorCode PotentialGetDimension(Potential V, PetscInt *D)
{
  PetscFunctionBegin;
  PetscCheck(V != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "PotentialGetDimension: potential is NULL");
  PetscCheck(D != NULL, V->comm, PETSC_ERR_ARG_NULL, "PotentialGetDimension: output pointer is NULL");
  *D = V->dim;
  PetscFunctionReturn(0);
}

/*
  PotentialView - prints the type and D, and for the mixture K and sigma; with the format
  PETSC_VIEWER_ASCII_INFO_DETAIL also A and m, or the weights and centres. A NULL viewer means
  stdout of the potential's communicator; non-ASCII viewers print nothing.

  Collective
*/
PetscErrorCode PotentialView(Potential V, PetscViewer viewer)
{
  PetscBool         isascii;
  PetscViewerFormat format;
  const PetscInt    D = V ? V->dim : 0;

  PetscFunctionBegin;
  PetscCheck(V != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "PotentialView: potential is NULL");
  if (!viewer) PetscCall(PetscViewerASCIIGetStdout(V->comm, &viewer));
  PetscCall(PetscObjectTypeCompare((PetscObject)viewer, PETSCVIEWERASCII, &isascii));
  if (!isascii) PetscFunctionReturn(0);
  PetscCall(PetscViewerGetFormat(viewer, &format));
  if (V->type == POTENTIAL_SHELL) {
    if (V->shell.view) PetscCall(V->shell.view(V->shell.ctx, viewer));
    else PetscCall(PetscViewerASCIIPrintf(viewer, "Potential: shell, D = %" PetscInt_FMT "\n", D));
  } else if (V->type == POTENTIAL_QUADRATIC) {
    PetscCall(PetscViewerASCIIPrintf(viewer, "Potential: quadratic (Ornstein-Uhlenbeck) 1/2 (x-m)^T A (x-m), D = %" PetscInt_FMT "\n", D));
    if (format == PETSC_VIEWER_ASCII_INFO_DETAIL) {
      PetscCall(PetscViewerASCIIPushTab(viewer));
      PetscCall(PetscViewerASCIIPrintf(viewer, "m ="));
      PetscCall(PetscViewerASCIIUseTabs(viewer, PETSC_FALSE));
      for (PetscInt j = 0; j < D; j++) PetscCall(PetscViewerASCIIPrintf(viewer, " %g", (double)V->m[j]));
      PetscCall(PetscViewerASCIIPrintf(viewer, "\n"));
      PetscCall(PetscViewerASCIIUseTabs(viewer, PETSC_TRUE));
      for (PetscInt i = 0; i < D; i++) {
        PetscCall(PetscViewerASCIIPrintf(viewer, "A[%" PetscInt_FMT "] =", i));
        PetscCall(PetscViewerASCIIUseTabs(viewer, PETSC_FALSE));
        for (PetscInt j = 0; j < D; j++) PetscCall(PetscViewerASCIIPrintf(viewer, " %g", (double)V->A[i * D + j]));
        PetscCall(PetscViewerASCIIPrintf(viewer, "\n"));
        PetscCall(PetscViewerASCIIUseTabs(viewer, PETSC_TRUE));
      }
      PetscCall(PetscViewerASCIIPopTab(viewer));
    }
  } else {
    PetscCall(PetscViewerASCIIPrintf(viewer, "Potential: Gaussian mixture -log sum_i w_i N(x; mu_i, sigma^2 I), D = %" PetscInt_FMT ", K = %" PetscInt_FMT ", sigma = %g\n", D, V->K, (double)V->sigma));
    if (format == PETSC_VIEWER_ASCII_INFO_DETAIL) {
      PetscCall(PetscViewerASCIIPushTab(viewer));
      for (PetscInt i = 0; i < V->K; i++) {
        PetscCall(PetscViewerASCIIPrintf(viewer, "w[%" PetscInt_FMT "] = %g, mu =", i, (double)PetscExpReal(V->logw[i])));
        PetscCall(PetscViewerASCIIUseTabs(viewer, PETSC_FALSE));
        for (PetscInt d = 0; d < D; d++) PetscCall(PetscViewerASCIIPrintf(viewer, " %g", (double)V->mu[i * D + d]));
        PetscCall(PetscViewerASCIIPrintf(viewer, "\n"));
        PetscCall(PetscViewerASCIIUseTabs(viewer, PETSC_TRUE));
      }
      PetscCall(PetscViewerASCIIPopTab(viewer));
    }
  }
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- kernels */

/* Grows the evaluation workspace to n points (kept between calls, freed by Destroy). */
static PetscErrorCode potential_workspace(Potential V, PetscInt n)
{
  PetscFunctionBegin;
  if (n <= V->cap) PetscFunctionReturn(0);
  PetscCall(PetscFree2(V->xc, V->gw));
  PetscCall(PetscMalloc2(n * V->dim, &V->xc, n * V->dim, &V->gw));
  V->cap = n;
  PetscFunctionReturn(0);
}

/* Quadratic, MATH.md sec. 8: G = (X - 1 m^T) A, one row-major dgemm (n x D)(D x D) over the
   batch (A is symmetric, so row b of G is A (x_b - m)); V_b = 1/2 (x_b - m) . G_b. The points
   are centred first (not X A - 1 (A m)^T) so that x = m gives exactly 0 without cancellation. */
static PetscErrorCode potential_quadratic(Potential V, PetscInt n, const PetscReal *x, PetscReal *v, PetscReal *grad)
{
  const PetscInt D = V->dim;
  PetscReal     *G;
  PetscBLASInt   bn, bD;

  PetscFunctionBegin;
  PetscCall(potential_workspace(V, n));
  G = grad ? grad : V->gw;
  for (PetscInt b = 0; b < n; b++)
    for (PetscInt d = 0; d < D; d++) V->xc[b * D + d] = x[b * D + d] - V->m[d];
  PetscCall(PetscBLASIntCast(n, &bn));
  PetscCall(PetscBLASIntCast(D, &bD));
  PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bn, bD, bD, 1.0, V->xc, bD, V->A, bD, 0.0, G, bD));
  PetscCall(PetscLogFlops(2.0 * n * D * D));
  if (v)
    for (PetscInt b = 0; b < n; b++) {
      PetscReal s = 0;
      for (PetscInt d = 0; d < D; d++) s += V->xc[b * D + d] * G[b * D + d];
      v[b] = 0.5 * s;
    }
  PetscFunctionReturn(0);
}

/* Mixture, MATH.md sec. 8: with l_i = log w_i - |x - mu_i|^2 / (2 sigma^2) and lmax = max_i l_i,
     V      = (D/2) log(2 pi sigma^2) - lmax - log sum_i exp(l_i - lmax)
     grad V = sum_i r_i (x - mu_i) / sigma^2,   r_i = exp(l_i - lmax) / sum_j exp(l_j - lmax)
   The shift by lmax (log-sum-exp) keeps both finite far from every centre, where each
   exp(l_i) underflows. */
static void potential_mixture(Potential V, PetscInt n, const PetscReal *x, PetscReal *v, PetscReal *grad)
{
  const PetscInt   D = V->dim, K = V->K;
  const PetscReal  is2 = 1 / (V->sigma * V->sigma);
  PetscReal *const l   = V->logit;

  for (PetscInt b = 0; b < n; b++) {
    const PetscReal *xb   = x + b * D;
    PetscReal        lmax = 0, s = 0;
    for (PetscInt i = 0; i < K; i++) {
      PetscReal r2 = 0;
      for (PetscInt d = 0; d < D; d++) r2 += (xb[d] - V->mu[i * D + d]) * (xb[d] - V->mu[i * D + d]);
      l[i] = V->logw[i] - 0.5 * r2 * is2;
      lmax = i ? PetscMax(lmax, l[i]) : l[i];
    }
    for (PetscInt i = 0; i < K; i++) {
      l[i] = PetscExpReal(l[i] - lmax); /* now the unnormalised responsibility, in (0, 1] */
      s += l[i];
    }
    if (v) v[b] = V->logZ - lmax - PetscLogReal(s);
    if (grad) {
      PetscReal *gb = grad + b * D;
      for (PetscInt d = 0; d < D; d++) gb[d] = 0;
      for (PetscInt i = 0; i < K; i++) {
        const PetscReal ri = l[i] / s * is2;
        for (PetscInt d = 0; d < D; d++) gb[d] += ri * (xb[d] - V->mu[i * D + d]);
      }
    }
  }
}

static PetscErrorCode potential_check_finite(const char *what, PetscInt n, PetscInt stride, const PetscReal *a)
{
  PetscFunctionBegin;
  for (PetscInt i = 0; i < n * stride; i++) PetscCheck(!PetscIsInfOrNanReal(a[i]), PETSC_COMM_SELF, PETSC_ERR_FP, "PotentialEvaluate: %s of point %" PetscInt_FMT " is not finite (entry %" PetscInt_FMT ": %g)", what, i / stride, i % stride, (double)a[i]);
  PetscFunctionReturn(0);
}

/*
  PotentialEvaluate - V and grad V at n points (MATH.md sec. 8).

  Input: x [n][D]. Output (each may be NULL): v [n], grad [n][D].
  A non-finite input point or a non-finite result is an error naming the point.

  Not Collective
*/
PetscErrorCode PotentialEvaluate(Potential V, PetscInt n, const PetscReal x[], PetscReal v[], PetscReal grad[])
{
  PetscFunctionBegin;
  PetscCheck(V != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "PotentialEvaluate: potential is NULL");
  PetscCheck(n >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "PotentialEvaluate: number of points n = %" PetscInt_FMT " must be >= 0", n);
  if (n == 0) PetscFunctionReturn(0);
  PetscCheck(x != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "PotentialEvaluate: points x are NULL");
  PetscCall(potential_check_finite("input x", n, V->dim, x));
  if (!v && !grad) PetscFunctionReturn(0);
  PetscCall(PetscLogEventBegin(WGF_Potential, 0, 0, 0, 0));
  if (V->type == POTENTIAL_SHELL) PetscCall(V->shell.evaluate(V->shell.ctx, n, x, v, grad));
  else if (V->type == POTENTIAL_QUADRATIC) PetscCall(potential_quadratic(V, n, x, v, grad));
  else {
    potential_mixture(V, n, x, v, grad);
    PetscCall(PetscLogFlops((3.0 * V->K + 2.0 * (grad ? V->K : 0)) * n * V->dim));
  }
  PetscCall(PetscLogEventEnd(WGF_Potential, 0, 0, 0, 0));
  if (v) PetscCall(potential_check_finite("V", n, 1, v));
  if (grad) PetscCall(potential_check_finite("grad V", n, V->dim, grad));
  PetscFunctionReturn(0);
}
