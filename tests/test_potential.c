static const char help[] = "Unit tests of the potentials (MATH.md secs 1 and 8): finite differences, direct loops, mixture identities, error paths.\n";

/* Each check compares the potentials with something independent of them: central finite
   differences of V, a direct double loop for the quadratic, the mixture density summed without
   the log-sum-exp shift, the K = 1 mixture against the quadratic, the nearest centre far away.
   The verdict is the exit status. */
#include "wgf_test.h"
#include <wgf/potential.h>
#include <petscviewer.h>
#include <stdio.h>
#include <math.h>




static PetscBool allfinite(PetscInt n, const PetscReal *a)
{
  for (PetscInt i = 0; i < n; i++)
    if (PetscIsInfOrNanReal(a[i])) return PETSC_FALSE;
  return PETSC_TRUE;
}

/* n values uniform in [lo, hi] */
static PetscErrorCode fill(PetscRandom rnd, PetscInt n, PetscReal lo, PetscReal hi, PetscReal *a)
{
  PetscFunctionBegin;
  for (PetscInt i = 0; i < n; i++) {
    PetscReal u;
    PetscCall(PetscRandomGetValueReal(rnd, &u)); /* in [-1, 1] */
    a[i] = lo + 0.5 * (u + 1) * (hi - lo);
  }
  PetscFunctionReturn(0);
}

/* A = B B^T / D + I/2 with B uniform in [-1, 1]: symmetric positive definite, not diagonal */
static PetscErrorCode random_spd(PetscRandom rnd, PetscInt D, PetscReal *A)
{
  PetscReal *B;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(D * D, &B));
  PetscCall(fill(rnd, D * D, -1, 1, B));
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < D; j++) {
      PetscReal s = 0;
      for (PetscInt k = 0; k < D; k++) s += B[i * D + k] * B[j * D + k];
      A[i * D + j] = s / D + (i == j ? 0.5 : 0);
    }
  PetscCall(PetscFree(B));
  PetscFunctionReturn(0);
}

/* grad V against central differences of V, coordinate by coordinate, at n random points in
   [-scale, scale]^D. For each point the 2D shifted points are one batched call. */
static PetscErrorCode check_fd(Potential V, PetscRandom rnd, PetscInt n, PetscReal scale, const char *label)
{
  PetscInt   D;
  PetscReal *x, *g, *xs, *vs, *fd;

  PetscFunctionBegin;
  PetscCall(PotentialGetDimension(V, &D));
  PetscCall(PetscMalloc5(n * D, &x, n * D, &g, 2 * D * D, &xs, 2 * D, &vs, D, &fd));
  PetscCall(fill(rnd, n * D, -scale, scale, x));
  PetscCall(PotentialEvaluate(V, n, x, NULL, g));
  for (PetscInt b = 0; b < n; b++) {
    PetscReal xmax = 0, gmax = 0, err = 0, h;
    for (PetscInt d = 0; d < D; d++) xmax = PetscMax(xmax, PetscAbsReal(x[b * D + d]));
    h = 1e-5 * (1 + xmax);
    for (PetscInt k = 0; k < 2 * D; k++) {
      PetscCall(PetscArraycpy(xs + k * D, x + b * D, D));
      xs[k * D + k / 2] += (k % 2 ? -h : h);
    }
    PetscCall(PotentialEvaluate(V, 2 * D, xs, vs, NULL));
    for (PetscInt d = 0; d < D; d++) {
      fd[d] = (vs[2 * d] - vs[2 * d + 1]) / (2 * h);
      gmax  = PetscMax(gmax, PetscAbsReal(g[b * D + d]));
      err   = PetscMax(err, PetscAbsReal(g[b * D + d] - fd[d]));
    }
    EXPECT(err <= 1e-6 * (1 + gmax), "%s: point %" PetscInt_FMT ": |grad V - central difference| = %g (|grad V| = %g)", label, b, (double)err, (double)gmax);
  }
  PetscCall(PetscFree5(x, g, xs, vs, fd));
  PetscFunctionReturn(0);
}

/* Quadratic: a direct double loop, x = m, the NULL outputs, finite differences. */
static PetscErrorCode check_quadratic(PetscRandom rnd, PetscInt D)
{
  const PetscInt n = 37;
  Potential      V;
  PotentialType  type;
  PetscInt       dim;
  PetscReal     *A, *m, *x, *v, *g, *vr, *gr, *v2, *g2;
  char           label[64];

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(label, sizeof(label), "quadratic D = %" PetscInt_FMT, D));
  PetscCall(PetscMalloc4(D * D, &A, D, &m, n * D, &x, n, &v));
  PetscCall(PetscMalloc5(n * D, &g, n, &vr, n * D, &gr, n, &v2, n * D, &g2));
  PetscCall(random_spd(rnd, D, A));
  PetscCall(fill(rnd, D, -1, 1, m));
  PetscCall(PotentialCreateQuadratic(PETSC_COMM_SELF, D, A, m, &V));
  PetscCall(PotentialGetType(V, &type));
  PetscCall(PotentialGetDimension(V, &dim));
  EXPECT(type == POTENTIAL_QUADRATIC && dim == D, "%s: type %d, dimension %" PetscInt_FMT, label, (int)type, dim);

  /* direct double loop: g = A (x - m), v = 1/2 (x - m) . g */
  PetscCall(fill(rnd, n * D, -2, 2, x));
  PetscCall(PotentialEvaluate(V, n, x, v, g));
  for (PetscInt b = 0; b < n; b++) {
    vr[b] = 0;
    for (PetscInt i = 0; i < D; i++) {
      gr[b * D + i] = 0;
      for (PetscInt j = 0; j < D; j++) gr[b * D + i] += A[i * D + j] * (x[b * D + j] - m[j]);
      vr[b] += 0.5 * (x[b * D + i] - m[i]) * gr[b * D + i];
    }
  }
  EXPECT(relerr(n, v, vr) <= 1e-13, "%s: V vs the double loop: relative error %g", label, (double)relerr(n, v, vr));
  EXPECT(relerr(n * D, g, gr) <= 1e-13, "%s: grad V vs the double loop: relative error %g", label, (double)relerr(n * D, g, gr));

  /* each output alone gives the same numbers (the other one NULL) */
  PetscCall(PotentialEvaluate(V, n, x, v2, NULL));
  PetscCall(PotentialEvaluate(V, n, x, NULL, g2));
  EXPECT(relerr(n, v2, v) == 0 && relerr(n * D, g2, g) == 0, "%s: V alone / grad alone differ from both together", label);

  /* x = m: V = 0 and grad V = 0 */
  for (PetscInt b = 0; b < 3; b++) PetscCall(PetscArraycpy(x + b * D, m, D));
  PetscCall(PotentialEvaluate(V, 3, x, v, g));
  for (PetscInt b = 0; b < 3; b++) EXPECT(PetscAbsReal(v[b]) <= 1e-14, "%s: V(m) = %g, expected 0", label, (double)v[b]);
  for (PetscInt i = 0; i < 3 * D; i++) EXPECT(PetscAbsReal(g[i]) <= 1e-14, "%s: grad V(m) entry %" PetscInt_FMT " = %g, expected 0", label, i, (double)g[i]);

  PetscCall(check_fd(V, rnd, 6, 2.0, label));
  PetscCall(PotentialDestroy(&V));
  PetscCall(PetscFree4(A, m, x, v));
  PetscCall(PetscFree5(g, vr, gr, v2, g2));
  PetscFunctionReturn(0);
}

/* The mixture density summed directly, without the log-sum-exp shift (fine at moderate x):
   p_i = w_i / W (2 pi sigma^2)^{-D/2} exp(-|x - mu_i|^2 / (2 sigma^2)), V = -log sum p_i,
   grad V = sum_i p_i (x - mu_i) / sigma^2 / sum_i p_i. */
static void mixture_direct(PetscInt D, PetscInt K, const PetscReal *w, const PetscReal *mu, PetscReal sigma, const PetscReal *x, PetscReal *v, PetscReal *g)
{
  PetscReal W = 0, p = 0, s2 = sigma * sigma;

  for (PetscInt i = 0; i < K; i++) W += w[i];
  for (PetscInt d = 0; d < D; d++) g[d] = 0;
  for (PetscInt i = 0; i < K; i++) {
    PetscReal r2 = 0, pi;
    for (PetscInt d = 0; d < D; d++) r2 += (x[d] - mu[i * D + d]) * (x[d] - mu[i * D + d]);
    pi = w[i] / W * PetscPowReal(2 * PETSC_PI * s2, -0.5 * D) * PetscExpReal(-r2 / (2 * s2));
    p += pi;
    for (PetscInt d = 0; d < D; d++) g[d] += pi * (x[d] - mu[i * D + d]) / s2;
  }
  for (PetscInt d = 0; d < D; d++) g[d] /= p;
  *v = -PetscLogReal(p);
}

/* Mixture: the direct sum, weights scaled by a constant, finite differences, far points. */
static PetscErrorCode check_mixture(PetscRandom rnd, PetscInt D, PetscInt K, PetscReal sigma)
{
  const PetscInt n = 23, nfar = 8;
  Potential      V, Vs;
  PotentialType  type;
  PetscInt       dim, nfar_tested = 0;
  PetscReal     *w, *ws, *mu, *x, *v, *g, *vr, *gr, *v2, *g2;
  char           label[96];

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(label, sizeof(label), "mixture D = %" PetscInt_FMT ", K = %" PetscInt_FMT ", sigma = %g", D, K, (double)sigma));
  PetscCall(PetscMalloc5(K, &w, K, &ws, K * D, &mu, n * D, &x, n, &v));
  PetscCall(PetscMalloc5(n * D, &g, n, &vr, n * D, &gr, n, &v2, n * D, &g2));
  PetscCall(fill(rnd, K, 0.2, 1.2, w));
  PetscCall(fill(rnd, K * D, -3, 3, mu));
  PetscCall(PotentialCreateMixture(PETSC_COMM_SELF, D, K, w, mu, sigma, &V));
  PetscCall(PotentialGetType(V, &type));
  PetscCall(PotentialGetDimension(V, &dim));
  EXPECT(type == POTENTIAL_MIXTURE && dim == D, "%s: type %d, dimension %" PetscInt_FMT, label, (int)type, dim);

  /* the direct sum at moderate points */
  PetscCall(fill(rnd, n * D, -4, 4, x));
  PetscCall(PotentialEvaluate(V, n, x, v, g));
  for (PetscInt b = 0; b < n; b++) mixture_direct(D, K, w, mu, sigma, x + b * D, vr + b, gr + b * D);
  EXPECT(relerr(n, v, vr) <= 1e-12, "%s: V vs the direct sum: relative error %g", label, (double)relerr(n, v, vr));
  EXPECT(relerr(n * D, g, gr) <= 1e-12, "%s: grad V vs the direct sum: relative error %g", label, (double)relerr(n * D, g, gr));

  /* unnormalised weights: c w gives the same V and grad (the weights are normalised) */
  for (PetscInt i = 0; i < K; i++) ws[i] = 1234.5 * w[i];
  PetscCall(PotentialCreateMixture(PETSC_COMM_SELF, D, K, ws, mu, sigma, &Vs));
  PetscCall(PotentialEvaluate(Vs, n, x, v2, g2));
  EXPECT(relerr(n, v2, v) <= 1e-13, "%s: weights scaled by 1234.5 change V: relative difference %g", label, (double)relerr(n, v2, v));
  EXPECT(relerr(n * D, g2, g) <= 1e-13, "%s: weights scaled by 1234.5 change grad V: relative difference %g", label, (double)relerr(n * D, g2, g));
  PetscCall(PotentialDestroy(&Vs));

  /* equal weights 1 and equal weights 7 give the same V (and both the direct sum) */
  for (PetscInt i = 0; i < K; i++) ws[i] = 1;
  PetscCall(PotentialCreateMixture(PETSC_COMM_SELF, D, K, ws, mu, sigma, &Vs));
  PetscCall(PotentialEvaluate(Vs, n, x, v, NULL));
  PetscCall(PotentialDestroy(&Vs));
  for (PetscInt i = 0; i < K; i++) ws[i] = 7;
  PetscCall(PotentialCreateMixture(PETSC_COMM_SELF, D, K, ws, mu, sigma, &Vs));
  PetscCall(PotentialEvaluate(Vs, n, x, v2, NULL));
  for (PetscInt b = 0; b < n; b++) mixture_direct(D, K, ws, mu, sigma, x + b * D, vr + b, gr + b * D);
  EXPECT(relerr(n, v2, v) <= 1e-13, "%s: equal weights 1 vs 7: V differs, relative difference %g", label, (double)relerr(n, v2, v));
  EXPECT(relerr(n, v2, vr) <= 1e-12, "%s: equal weights: V vs the direct sum: relative error %g", label, (double)relerr(n, v2, vr));
  PetscCall(PotentialDestroy(&Vs));

  PetscCall(check_fd(V, rnd, 6, 4.0, label));

  /* far points, |x| = 1e3: every exp(-|x - mu|^2 / (2 sigma^2)) underflows, yet V and grad are
     finite and follow the nearest centre i: V ~ |x - mu_i|^2 / (2 sigma^2) - log(w_i / W) +
     (D/2) log(2 pi sigma^2), grad ~ (x - mu_i) / sigma^2. The other centres contribute
     exp(-gap) relatively, gap the difference of the two smallest exponents; points with a small
     gap (nearly equidistant from two centres) are skipped. */
  for (PetscInt t = 0; t < 40 && nfar_tested < nfar; t++) {
    PetscReal xn = 0, e[2] = {PETSC_MAX_REAL, PETSC_MAX_REAL}, W = 0, vexp, *gexp = gr, s2 = sigma * sigma;
    PetscInt  inear = 0;
    PetscCall(fill(rnd, D, -1, 1, x));
    for (PetscInt d = 0; d < D; d++) xn += x[d] * x[d];
    if (xn < 1e-6) continue;
    for (PetscInt d = 0; d < D; d++) x[d] *= 1e3 / PetscSqrtReal(xn);
    for (PetscInt i = 0; i < K; i++) {
      PetscReal r2 = 0, ei;
      W += w[i];
      for (PetscInt d = 0; d < D; d++) r2 += (x[d] - mu[i * D + d]) * (x[d] - mu[i * D + d]);
      ei = r2 / (2 * s2) - PetscLogReal(w[i]);
      if (ei < e[0]) {
        e[1]  = e[0];
        e[0]  = ei;
        inear = i;
      } else if (ei < e[1]) e[1] = ei;
    }
    if (K > 1 && e[1] - e[0] < 60) continue;
    nfar_tested++;
    PetscCall(PotentialEvaluate(V, 1, x, v, g));
    EXPECT(allfinite(1, v) && allfinite(D, g), "%s: far point %" PetscInt_FMT ": V or grad V not finite", label, t);
    vexp = e[0] + PetscLogReal(W) + 0.5 * D * PetscLogReal(2 * PETSC_PI * s2);
    for (PetscInt d = 0; d < D; d++) gexp[d] = (x[d] - mu[inear * D + d]) / s2;
    EXPECT(PetscAbsReal(v[0] - vexp) <= 1e-12 * PetscAbsReal(vexp), "%s: far point %" PetscInt_FMT ": V = %.17g, nearest centre gives %.17g", label, t, (double)v[0], (double)vexp);
    EXPECT(relerr(D, g, gexp) <= 1e-12, "%s: far point %" PetscInt_FMT ": grad V vs (x - mu_nearest)/sigma^2: relative error %g", label, t, (double)relerr(D, g, gexp));
  }
  EXPECT(nfar_tested == nfar, "%s: only %" PetscInt_FMT " of %" PetscInt_FMT " far points had a clear nearest centre", label, nfar_tested, nfar);

  PetscCall(PotentialDestroy(&V));
  PetscCall(PetscFree5(w, ws, mu, x, v));
  PetscCall(PetscFree5(g, vr, gr, v2, g2));
  PetscFunctionReturn(0);
}

/* The mixture with K = 1 is the quadratic with A = I / sigma^2, m = mu, plus (D/2) log(2 pi sigma^2). */
static PetscErrorCode check_k1(PetscRandom rnd, PetscInt D, PetscReal sigma)
{
  const PetscInt n = 17;
  Potential      Vm, Vq;
  PetscReal      w = 2.5, c = 0.5 * D * PetscLogReal(2 * PETSC_PI * sigma * sigma), *A, *mu, *x, *vm, *vq, *gm, *gq;

  PetscFunctionBegin;
  PetscCall(PetscMalloc3(D * D, &A, D, &mu, n * D, &x));
  PetscCall(PetscMalloc4(n, &vm, n, &vq, n * D, &gm, n * D, &gq));
  PetscCall(fill(rnd, D, -2, 2, mu));
  PetscCall(fill(rnd, n * D, -4, 4, x));
  for (PetscInt i = 0; i < D * D; i++) A[i] = (i % (D + 1) == 0) ? 1 / (sigma * sigma) : 0;
  PetscCall(PotentialCreateMixture(PETSC_COMM_SELF, D, 1, &w, mu, sigma, &Vm));
  PetscCall(PotentialCreateQuadratic(PETSC_COMM_SELF, D, A, mu, &Vq));
  PetscCall(PotentialEvaluate(Vm, n, x, vm, gm));
  PetscCall(PotentialEvaluate(Vq, n, x, vq, gq));
  for (PetscInt b = 0; b < n; b++) vq[b] += c;
  EXPECT(relerr(n, vm, vq) <= 1e-13, "K = 1 mixture, D = %" PetscInt_FMT ", sigma = %g: V - quadratic - (D/2) log(2 pi sigma^2): relative error %g", D, (double)sigma, (double)relerr(n, vm, vq));
  EXPECT(relerr(n * D, gm, gq) <= 1e-13, "K = 1 mixture, D = %" PetscInt_FMT ", sigma = %g: grad V vs the quadratic: relative error %g", D, (double)sigma, (double)relerr(n * D, gm, gq));
  PetscCall(PotentialDestroy(&Vm));
  PetscCall(PotentialDestroy(&Vq));
  PetscCall(PetscFree3(A, mu, x));
  PetscCall(PetscFree4(vm, vq, gm, gq));
  PetscFunctionReturn(0);
}

/* PotentialView into a temporary file, read back: the type, D, K and sigma are there. */
static PetscErrorCode check_view(void)
{
  PetscReal   A[4] = {2, 1, 1, 3}, m[2] = {0.5, -1}, w[3] = {1, 2, 3}, mu[6] = {0, 0, 1, 1, -1, 2};
  Potential   V[2];
  const char *want[2][3] = {
    {"quadratic", "D = 2", "D = 2"      },
    {"mixture",   "K = 3", "sigma = 0.7"}
  };

  PetscFunctionBegin;
  PetscCall(PotentialCreateQuadratic(PETSC_COMM_SELF, 2, A, m, &V[0]));
  PetscCall(PotentialCreateMixture(PETSC_COMM_SELF, 2, 3, w, mu, 0.7, &V[1]));
  for (int k = 0; k < 2; k++) {
    FILE       *f = tmpfile();
    PetscViewer viewer;
    char        buf[1024] = "";
    size_t      len;

    PetscCheck(f != NULL, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "tmpfile() failed");
    PetscCall(PetscViewerASCIIOpenWithFILE(PETSC_COMM_SELF, f, &viewer));
    PetscCall(PotentialView(V[k], viewer));
    PetscCall(PetscViewerFlush(viewer));
    rewind(f);
    len      = fread(buf, 1, sizeof(buf) - 1, f);
    buf[len] = 0;
    PetscCall(PetscViewerDestroy(&viewer));
    fclose(f);
    for (int j = 0; j < 3; j++) {
      char *found;
      PetscCall(PetscStrstr(buf, want[k][j], &found));
      EXPECT(found != NULL, "PotentialView printed \"%s\", without \"%s\"", buf, want[k][j]);
    }
  }
  PetscCall(PotentialDestroy(&V[0]));
  PetscCall(PotentialDestroy(&V[1]));
  PetscFunctionReturn(0);
}

/* ierr is the expected code and the message of the error contains text */
static PetscErrorCode expect_error(PetscErrorCode ierr, PetscErrorCode code, const char *text, const char *what, int line)
{
  char     *msg = NULL, *found = NULL;
  PetscBool ok;

  PetscFunctionBegin;
  PetscCall(PetscErrorMessage(ierr, NULL, &msg));
  if (msg && text) PetscCall(PetscStrstr(msg, text, &found));
  ok = (ierr == code && (!text || found)) ? PETSC_TRUE : PETSC_FALSE;
  if (!ok) {
    nfail++;
    PetscCall(PetscPrintf(PETSC_COMM_SELF, "FAIL %s:%d: %s: error code %d (expected %d), message \"%s\" (expected to contain \"%s\")\n", __FILE__, line, what, (int)ierr, (int)code, msg ? msg : "", text ? text : ""));
  }
  PetscFunctionReturn(0);
}
#define EXPECT_ERROR(call, code, text, what) PetscCall(expect_error((call), (code), (text), (what), __LINE__))

static PetscErrorCode check_errors(PetscRandom rnd)
{
  PetscReal      A[9], Ab[9], m[3] = {0.1, 0.2, 0.3}, w[3] = {1, 1, 1}, mu[9] = {0}, x[9] = {0};
  PetscReal      v[3], g[9];
  Potential      V = NULL, Vm = NULL;

  PetscFunctionBegin;
  PetscCall(random_spd(rnd, 3, A));
  PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));

  /* non-symmetric A whose lower triangle is positive definite (so only the symmetry check can
     catch it: dpotrf reads the lower triangle only) */
  PetscCall(PetscArraycpy(Ab, A, 9));
  Ab[0 * 3 + 2] += 1e-6;
  EXPECT_ERROR(PotentialCreateQuadratic(PETSC_COMM_SELF, 3, Ab, m, &V), PETSC_ERR_ARG_WRONG, "A[2][0]", "non-symmetric A");
  EXPECT(V == NULL, "a failed PotentialCreateQuadratic left a non-NULL potential");
  /* an asymmetry of 1e-14 max|A| is accepted */
  PetscCall(PetscArraycpy(Ab, A, 9));
  Ab[0 * 3 + 2] += 1e-14 * Ab[0 * 3 + 2];
  EXPECT_ERROR(PotentialCreateQuadratic(PETSC_COMM_SELF, 3, Ab, m, &V), 0, NULL, "A symmetric to 1e-14");
  PetscCall(PotentialDestroy(&V));
  /* indefinite and semi-definite A */
  for (PetscInt i = 0; i < 9; i++) Ab[i] = 0;
  Ab[0] = 1, Ab[4] = -1, Ab[8] = 1;
  EXPECT_ERROR(PotentialCreateQuadratic(PETSC_COMM_SELF, 3, Ab, m, &V), PETSC_ERR_ARG_WRONG, "not positive definite", "indefinite A");
  Ab[4] = 0;
  EXPECT_ERROR(PotentialCreateQuadratic(PETSC_COMM_SELF, 3, Ab, m, &V), PETSC_ERR_ARG_WRONG, "not positive definite", "singular A");
  EXPECT(V == NULL, "a failed PotentialCreateQuadratic left a non-NULL potential");
  /* non-finite entries */
  PetscCall(PetscArraycpy(Ab, A, 9));
  Ab[4] = INFINITY; /* PETSC_INFINITY is finite (PETSC_MAX_REAL/4) */
  EXPECT_ERROR(PotentialCreateQuadratic(PETSC_COMM_SELF, 3, Ab, m, &V), PETSC_ERR_FP, "A[1][1]", "infinite A entry");
  m[2] = NAN;
  EXPECT_ERROR(PotentialCreateQuadratic(PETSC_COMM_SELF, 3, A, m, &V), PETSC_ERR_FP, "m[2]", "NaN in m");
  m[2] = 0.3;
  EXPECT_ERROR(PotentialCreateQuadratic(PETSC_COMM_SELF, 0, A, m, &V), PETSC_ERR_ARG_OUTOFRANGE, "D = 0", "D = 0");

  /* mixture: sigma <= 0 or not finite, non-positive weights, K = 0 */
  EXPECT_ERROR(PotentialCreateMixture(PETSC_COMM_SELF, 3, 3, w, mu, 0, &Vm), PETSC_ERR_ARG_OUTOFRANGE, "sigma", "sigma = 0");
  EXPECT_ERROR(PotentialCreateMixture(PETSC_COMM_SELF, 3, 3, w, mu, -1, &Vm), PETSC_ERR_ARG_OUTOFRANGE, "sigma", "sigma = -1");
  EXPECT_ERROR(PotentialCreateMixture(PETSC_COMM_SELF, 3, 3, w, mu, NAN, &Vm), PETSC_ERR_ARG_OUTOFRANGE, "sigma", "sigma = NaN");
  w[1] = 0;
  EXPECT_ERROR(PotentialCreateMixture(PETSC_COMM_SELF, 3, 3, w, mu, 1, &Vm), PETSC_ERR_ARG_OUTOFRANGE, "w[1]", "weight 0");
  w[1] = -2;
  EXPECT_ERROR(PotentialCreateMixture(PETSC_COMM_SELF, 3, 3, w, mu, 1, &Vm), PETSC_ERR_ARG_OUTOFRANGE, "w[1]", "negative weight");
  w[1] = 1;
  EXPECT_ERROR(PotentialCreateMixture(PETSC_COMM_SELF, 3, 0, w, mu, 1, &Vm), PETSC_ERR_ARG_OUTOFRANGE, "K = 0", "K = 0");
  EXPECT(Vm == NULL, "a failed PotentialCreateMixture left a non-NULL potential");

  /* non-finite input points, and a result that overflows */
  PetscCall(PotentialCreateQuadratic(PETSC_COMM_SELF, 3, A, m, &V));
  PetscCall(PotentialCreateMixture(PETSC_COMM_SELF, 3, 3, w, mu, 1, &Vm));
  x[1 * 3 + 2] = NAN;
  EXPECT_ERROR(PotentialEvaluate(V, 3, x, v, g), PETSC_ERR_FP, "input x of point 1", "quadratic, NaN input point");
  EXPECT_ERROR(PotentialEvaluate(Vm, 3, x, v, g), PETSC_ERR_FP, "input x of point 1", "mixture, NaN input point");
  x[1 * 3 + 2] = 0;
  x[2 * 3]     = -INFINITY;
  EXPECT_ERROR(PotentialEvaluate(Vm, 3, x, NULL, g), PETSC_ERR_FP, "input x of point 2", "mixture, infinite input point");
  x[2 * 3] = 1e200;
  EXPECT_ERROR(PotentialEvaluate(V, 3, x, v, NULL), PETSC_ERR_FP, "V of point 2", "quadratic, V overflows");
  EXPECT_ERROR(PotentialEvaluate(V, -1, x, v, g), PETSC_ERR_ARG_OUTOFRANGE, "n = -1", "n = -1");
  x[2 * 3] = 0;
  EXPECT_ERROR(PotentialEvaluate(Vm, 3, x, v, g), 0, NULL, "finite points after the errors");
  PetscCall(PetscPopErrorHandler());

  PetscCall(PotentialDestroy(&V));
  PetscCall(PotentialDestroy(&Vm));
  EXPECT(V == NULL && Vm == NULL, "PotentialDestroy did not set the handle to NULL");
  PetscCall(PotentialDestroy(&V)); /* NULL is accepted */
  PetscCall(PotentialDestroy(NULL));
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscRandom    rnd;
  const PetscInt dims[] = {1, 2, 3, 5, 8};
  const PetscInt Ks[]   = {1, 3, 8};
  const PetscReal sigmas[] = {1.0, 0.6};

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(PetscRandomCreate(PETSC_COMM_SELF, &rnd));
  PetscCall(PetscRandomSetSeed(rnd, 11));
  PetscCall(PetscRandomSeed(rnd));
  PetscCall(PetscRandomSetInterval(rnd, -1, 1));
  for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++) {
    PetscCall(check_quadratic(rnd, dims[i]));
    for (size_t k = 0; k < sizeof(Ks) / sizeof(Ks[0]); k++)
      for (size_t s = 0; s < sizeof(sigmas) / sizeof(sigmas[0]); s++) PetscCall(check_mixture(rnd, dims[i], Ks[k], sigmas[s]));
    PetscCall(check_k1(rnd, dims[i], 0.7));
  }
  PetscCall(check_view());
  PetscCall(check_errors(rnd));
  PetscCall(PetscRandomDestroy(&rnd));
  PetscCall(PetscPrintf(PETSC_COMM_SELF, "%s: %" PetscInt_FMT " failures\n", nfail ? "FAILED" : "passed", nfail));
  PetscCall(PetscFinalize());
  return nfail ? 1 : 0;
}
