static const char help[] = "Unit tests of the flow: sampling, densities along the chain, inversion (MATH.md secs 1, 5).\n";

/* The density along the chain is checked against the change-of-variables formula with the
   Jacobian of the whole chain taken by central differences of the pushes (no Hessian code);
   the inversion against the push it inverts; the density at arbitrary points against the chain. */
#include "wgf_test.h"
#include <wgf/flow.h>
#include <math.h>

static PetscErrorCode check_dimension(PetscInt D, PetscInt nmaps)
{
  const PetscInt n = 40, widths[2] = {7, 5};
  ICNN           net;
  Flow           flow;
  PetscRandom    rnd;
  PetscReal     *mu0, *S0, *G, *x0, *x, *lr, *lr2, *piece, *z, *zx, *xb, *J, *y, *yi, eps = 1e-6, err;
  PetscBool     *conv;
  PetscInt       P;
  Gaussian       g0; /* rho_0 built here, independently of the flow's copy */

  PetscFunctionBegin;
  PetscCall(PetscMalloc6(D, &mu0, D * D, &S0, D * D, &G, n * D, &x0, n * D, &x, n, &lr));
  PetscCall(PetscMalloc6(n, &lr2, n * D, &piece, n, &conv, D, &z, D, &zx, D * D, &J));
  PetscCall(PetscMalloc3(2 * D, &xb, n * D, &y, n * D, &yi));
  PetscCall(PetscRandomCreate(PETSC_COMM_SELF, &rnd));
  PetscCall(PetscRandomSetSeed(rnd, 11 + D));
  PetscCall(PetscRandomSeed(rnd));
  PetscCall(PetscRandomSetInterval(rnd, -1, 1));
  /* rho_0 = N(mu0, G G^T + I/2) */
  for (PetscInt i = 0; i < D; i++) PetscCall(PetscRandomGetValueReal(rnd, &mu0[i]));
  for (PetscInt i = 0; i < D * D; i++) PetscCall(PetscRandomGetValueReal(rnd, &G[i]));
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < D; j++) {
      S0[i * D + j] = i == j ? 0.5 : 0;
      for (PetscInt k = 0; k < D; k++) S0[i * D + j] += G[i * D + k] * G[j * D + k];
    }
  PetscCall(ICNNCreate(PETSC_COMM_SELF, &net));
  PetscCall(ICNNSetShape(net, D, 2, widths, 2));
  PetscCall(ICNNSetStrongConvexity(net, 0.5));
  PetscCall(ICNNSetChunkSize(net, 16));
  PetscCall(FlowCreate(PETSC_COMM_SELF, &flow));
  PetscCall(FlowSetFromOptions(flow));
  PetscCall(FlowSetInitialGaussian(flow, D, mu0, S0));
  PetscCall(GaussianCreate(D, mu0, S0, &g0));
  PetscCall(FlowSetNetwork(flow, net));
  for (PetscInt i = 0; i < nmaps; i++) { /* random convex maps */
    PetscReal *theta;
    PetscCall(ICNNInitialize(net, rnd));
    PetscCall(ICNNGetParameters(net, &theta));
    PetscCall(FlowAddMap(flow, theta));
  }
  PetscCall(ICNNGetNumParameters(net, &P));

  /* 1. samples and log densities along the chain vs change of variables with an FD Jacobian */
  PetscCall(FlowSample(flow, nmaps, 5, RNG_EVAL, 1, 2, 0, n, x0, x, lr));
  err = 0;
  for (PetscInt b = 0; b < 6; b++) {
    PetscReal l0;
    for (PetscInt d = 0; d < D; d++) {
      for (PetscInt s = 0; s < 2; s++) {
        PetscCall(PetscArraycpy(xb + s * D, x0 + b * D, D));
        xb[s * D + d] += s ? -eps : eps;
      }
      PetscCall(FlowPush(flow, 0, nmaps, 2, xb, NULL));
      for (PetscInt e = 0; e < D; e++) J[e * D + d] = (xb[e] - xb[D + e]) / (2 * eps);
    }
    PetscCall(GaussianLogDensity(&g0, 1, x0 + b * D, &l0));
    err = PetscMax(err, PetscAbsReal(l0 - logabsdet(D, J) - lr[b]));
  }
  EXPECT(err < 1e-6, "D=%d: log density along the chain differs from change of variables with an FD Jacobian by %g", (int)D, (double)err);

  /* 2. row invariance of the draws: rows 10..14 drawn alone are rows 10..14 of the batch, to
     rounding (BLAS sums in another order when the batch has another size) */
  PetscCall(FlowSample(flow, 0, 5, RNG_EVAL, 1, 2, 10, 5, NULL, piece, NULL));
  for (PetscInt i = 0; i < 5 * D; i++) EXPECT(PetscAbsReal(piece[i] - x0[10 * D + i]) <= 1e-14 * (1 + PetscAbsReal(x0[10 * D + i])), "D=%d: draw of row %d alone differs", (int)D, (int)(10 + i / D));
  PetscCall(FlowSample(flow, nmaps, 5, RNG_EVAL, 1, 2, 10, 5, NULL, piece, lr2));
  for (PetscInt i = 0; i < 5 * D; i++) EXPECT(PetscAbsReal(piece[i] - x[10 * D + i]) <= 1e-13 * (1 + PetscAbsReal(x[10 * D + i])), "D=%d: row %d pushed alone differs by %g", (int)D, (int)(10 + i / D), (double)(piece[i] - x[10 * D + i]));

  /* 3. inverting each map undoes it; the density at the pushed points by inversion equals the chain's */
  PetscCall(PetscArraycpy(y, x0, n * D));
  PetscCall(FlowPush(flow, 0, 1, n, y, NULL));
  PetscCall(FlowInvertMap(flow, 1, n, y, yi, NULL, conv));
  err = 0;
  for (PetscInt i = 0; i < n * D; i++) err = PetscMax(err, PetscAbsReal(yi[i] - x0[i]));
  for (PetscInt b = 0; b < n; b++) EXPECT(conv[b], "D=%d: inversion of map 1 did not converge at point %d", (int)D, (int)b);
  EXPECT(err < 1e-8, "D=%d: inverse of map 1 misses the original point by %g", (int)D, (double)err);
  PetscCall(FlowLogDensity(flow, nmaps, n, x, lr2, conv));
  err = 0;
  for (PetscInt b = 0; b < n; b++) {
    EXPECT(conv[b], "D=%d: inversion of the chain did not converge at point %d", (int)D, (int)b);
    err = PetscMax(err, PetscAbsReal(lr2[b] - lr[b]));
  }
  EXPECT(err < 1e-7, "D=%d: log density by inversion differs from the chain by %g", (int)D, (double)err);

  /* 4. k = 0 is rho_0 itself */
  {
    PetscCall(GaussianLogDensity(&g0, n, x, lr));
    PetscCall(FlowLogDensity(flow, 0, n, x, lr2, conv));
    for (PetscInt b = 0; b < n; b++) EXPECT(lr[b] == lr2[b] && conv[b], "D=%d: log rho_0 differs at point %d", (int)D, (int)b);
  }

  /* 5. a point that cannot be inverted within the iteration limit is flagged, never a number */
  PetscCall(PetscOptionsSetValue(NULL, "-flow_newton_maxit", "1"));
  PetscCall(FlowSetFromOptions(flow));
  PetscCall(PetscOptionsClearValue(NULL, "-flow_newton_maxit"));
  for (PetscInt i = 0; i < D; i++) z[i] = 30 + i;
  PetscCall(FlowLogDensity(flow, nmaps, 1, z, lr2, conv));
  EXPECT(!conv[0] && PetscIsNanReal(lr2[0]), "D=%d: one Newton iteration from a far point reported converged (%d) with log density %g", (int)D, (int)conv[0], (double)lr2[0]);

  PetscCall(GaussianDestroy(&g0));
  PetscCall(FlowDestroy(&flow));
  EXPECT(flow == NULL, "FlowDestroy did not set NULL");
  PetscCall(ICNNDestroy(&net));
  PetscCall(PetscRandomDestroy(&rnd));
  PetscCall(PetscFree6(mu0, S0, G, x0, x, lr));
  PetscCall(PetscFree6(lr2, piece, conv, z, zx, J));
  PetscCall(PetscFree3(xb, y, yi));
  (void)P;
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(check_dimension(1, 2));
  PetscCall(check_dimension(3, 3));
  PetscCall(check_dimension(6, 2));
  PetscCall(PetscPrintf(PETSC_COMM_SELF, "%s: %" PetscInt_FMT " failures\n", nfail ? "FAILED" : "passed", nfail));
  PetscCall(PetscFinalize());
  return nfail ? 1 : 0;
}
