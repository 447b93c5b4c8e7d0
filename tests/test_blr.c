static const char help[] = "Unit tests of the posterior problem (-problem blr, MATH.md sec. 8): V, grad V, the data minibatches, the prior rho_0 and the predictive.\n";

/* Every check compares with something independent of src/problems/blr.c:
   - V on the whole data set against the direct formula written here (log p0 and a sum of log
     sigmoids, in a different but stable form), at points with log alpha near -8 and 8 too;
   - grad V against central finite differences of V, for the whole data set and for a minibatch
     (the same (step, iteration) key);
   - minibatches: the same key gives the same V, another key another V, and the mean over many keys
     is the whole-data V (unbiased), within 5 standard errors;
   - rho_0 (the truncated prior): in d = 1 its log density integrates to one by a 2-D quadrature,
     and the CDF of log alpha of 200000 draws matches the quadrature of the density at 5 points
     within 5 binomial standard errors; in d = 3 E[alpha |w|^2] = d (alpha |w|^2 ~ chi^2_d) and
     the logp of the draws equals the log density at them;
   - the non-centred coordinates u = (z, a), theta = T(u) = (z e^{-a/2}, a): T^{-1}(T(u)) = u,
     log |det DT| against the determinant of a finite-difference Jacobian, V_u(u) = V(T(u)) -
     log |det DT(u)| with V in theta (checked above), grad V_u by finite differences, and rho_0 in
     u: the same draws as in theta once mapped by T, with log densities that differ by the log det;
   - BLRPredictAccumulate and BLRScore against direct loops.
   Data files are written here with int8 labels (the layout -blr_data reads). Runs on 1 rank. */
#include "wgf_test.h"
#include <wgf/problem.h>
#include <wgf/blr.h>
#include <wgf/h5io.h>
#include <math.h>
#include <stdio.h>

#define NROWS 37

/* A data file: rows x_i = (cos(1.3 i + j), ...) scaled, labels from a fixed pattern. */
static PetscErrorCode write_data(const char path[], PetscInt d, PetscReal X[], PetscReal y[])
{
  hid_t       f;
  hsize_t     dX[2] = {NROWS, (hsize_t)d}, dy[1] = {NROWS};
  signed char yl[NROWS];

  PetscFunctionBegin;
  for (PetscInt i = 0; i < NROWS; i++) {
    for (PetscInt j = 0; j < d; j++) X[i * d + j] = 1.5 * PetscCosReal(1.3 * i + 0.7 * j + 0.2);
    y[i]  = (i * 7 + 3) % 5 < 3 ? 1 : -1;
    yl[i] = (signed char)y[i];
  }
  PetscCall(H5IOCreate(PETSC_COMM_SELF, path, &f));
  PetscCall(H5IOWriteRows(f, "/X", 2, dX, 0, NROWS, X));
  PetscCall(H5IOWriteRowsInt8(f, "/y", 1, dy, 0, NROWS, yl));
  PetscCall(H5IOClose(&f));
  PetscFunctionReturn(0);
}

/* The checks of V and rho_0 in theta run with -blr_coordinates theta; test_noncentred compares
   the non-centred ones with them. */
static PetscErrorCode blr_problem_in(const char path[], const char batch[], const char coords[], Problem *p)
{
  PetscFunctionBegin;
  PetscCall(PetscOptionsSetValue(NULL, "-problem", "blr"));
  PetscCall(PetscOptionsSetValue(NULL, "-blr_coordinates", coords));
  PetscCall(PetscOptionsSetValue(NULL, "-blr_data", path));
  PetscCall(PetscOptionsSetValue(NULL, "-blr_data_batch", batch));
  PetscCall(ProblemCreate(PETSC_COMM_SELF, p));
  PetscCall(ProblemSetSeed(*p, 5));
  PetscCall(ProblemSetFromOptions(*p));
  PetscFunctionReturn(0);
}

static PetscErrorCode blr_problem(const char path[], const char batch[], Problem *p)
{
  PetscFunctionBegin;
  PetscCall(blr_problem_in(path, batch, "theta", p));
  PetscFunctionReturn(0);
}

/* The whole-data V, directly: -[log b + a - b alpha + (d/2) a - alpha |w|^2 / 2 - (d/2) log 2pi]
   - sum_i log sigmoid(y_i w.x_i), with log sigmoid(z) = -log(1 + e^-z) (or z - log(1 + e^z)). */
static PetscReal direct_V(PetscInt d, const PetscReal *X, const PetscReal *y, const PetscReal *t)
{
  PetscReal a = t[d], alpha = PetscExpReal(a), w2 = 0, b = 100, ll = 0;
  for (PetscInt j = 0; j < d; j++) w2 += t[j] * t[j];
  for (PetscInt i = 0; i < NROWS; i++) {
    PetscReal z = 0;
    for (PetscInt j = 0; j < d; j++) z += t[j] * X[i * d + j];
    z *= y[i];
    ll += z > 0 ? -PetscLogReal(1 + PetscExpReal(-z)) : z - PetscLogReal(1 + PetscExpReal(z));
  }
  return -(PetscLogReal(b) + a - b * alpha + 0.5 * d * a - 0.5 * alpha * w2 - 0.5 * d * PetscLogReal(2 * PETSC_PI)) - ll;
}

static PetscErrorCode test_potential(void)
{
  const PetscInt d = 3, D = 4, np = 8;
  PetscReal      X[NROWS * 3], y[NROWS], pts[8 * 4], v[8], g[8 * 4], vp[2], xp[2 * 4];
  const PetscReal as[8] = {-8, -7.999, 8, 7.9, -8.2, 8.3, -2, 0.5};
  Problem        p;
  Potential      V;

  PetscFunctionBegin;
  PetscCall(write_data("test_blr_d3.h5", d, X, y));
  for (PetscInt b = 0; b < np; b++) {
    for (PetscInt j = 0; j < d; j++) pts[b * D + j] = 0.4 * PetscSinReal(2.1 * b + j) * (b % 3 ? 1 : 3);
    pts[b * D + d] = as[b];
  }
  /* whole data (a batch larger than n): V against the direct formula, grad by finite differences */
  PetscCall(blr_problem("test_blr_d3.h5", "1000", &p));
  PetscCall(ProblemGetPotential(p, &V));
  PetscCall(PotentialEvaluate(V, np, pts, v, g));
  for (PetscInt b = 0; b < np; b++) {
    PetscReal want = direct_V(d, X, y, pts + b * D);
    EXPECT(PetscAbsReal(v[b] - want) <= 1e-12 * PetscMax(1, PetscAbsReal(want)), "V at point %d (a = %g): %.17g, direct %.17g", (int)b, (double)as[b], (double)v[b], (double)want);
  }
  for (PetscInt b = 0; b < np; b++)
    for (PetscInt k = 0; k < D; k++) {
      PetscReal eps = 1e-6 * PetscMax(1, PetscAbsReal(pts[b * D + k])), fd, scale;
      for (PetscInt s = 0; s < 2; s++) {
        PetscCall(PetscArraycpy(xp + s * D, pts + b * D, D));
        xp[s * D + k] += s ? -eps : eps;
      }
      PetscCall(PotentialEvaluate(V, 2, xp, vp, NULL));
      fd    = (vp[0] - vp[1]) / (2 * eps);
      scale = PetscMax(1, PetscAbsReal(v[b])) / PetscMax(1e-3, eps); /* the rounding of V over eps */
      EXPECT(PetscAbsReal(g[b * D + k] - fd) <= 1e-6 * PetscMax(PetscAbsReal(fd), 1) + 1e-9 * scale, "grad V at point %d (a = %g), component %d: %.10g, finite difference %.10g", (int)b, (double)as[b], (int)k, (double)g[b * D + k], (double)fd);
    }
  PetscCall(ProblemDestroy(&p));

  /* minibatches of 10 rows */
  {
    const PetscInt nk = 4000;
    PetscReal      v1[8], v2[8], v3[8], vf[8], mean[8] = {0}, sq[8] = {0};
    PetscCall(blr_problem("test_blr_d3.h5", "1000", &p));
    PetscCall(ProblemGetPotential(p, &V));
    PetscCall(PotentialEvaluate(V, np, pts, vf, NULL));
    PetscCall(ProblemDestroy(&p));
    PetscCall(blr_problem("test_blr_d3.h5", "10", &p));
    PetscCall(ProblemGetPotential(p, &V));
    PetscCall(PotentialSetIteration(V, 2, 5));
    PetscCall(PotentialEvaluate(V, np, pts, v1, g));
    PetscCall(PotentialSetIteration(V, 3, 5));
    PetscCall(PotentialEvaluate(V, np, pts, v2, NULL));
    PetscCall(PotentialSetIteration(V, 2, 5));
    PetscCall(PotentialEvaluate(V, np, pts, v3, NULL));
    for (PetscInt b = 0; b < np; b++) {
      EXPECT(v1[b] == v3[b], "minibatch (2, 5) twice: V at point %d %.17g then %.17g", (int)b, (double)v1[b], (double)v3[b]);
      EXPECT(v1[b] != v2[b], "minibatches (2, 5) and (3, 5) give the same V at point %d", (int)b);
    }
    for (PetscInt b = 0; b < np; b++) /* the gradient of the minibatch V, by finite differences */
      for (PetscInt k = 0; k < D; k++) {
        PetscReal eps = 1e-6 * PetscMax(1, PetscAbsReal(pts[b * D + k])), fd;
        for (PetscInt s = 0; s < 2; s++) {
          PetscCall(PetscArraycpy(xp + s * D, pts + b * D, D));
          xp[s * D + k] += s ? -eps : eps;
        }
        PetscCall(PotentialSetIteration(V, 2, 5));
        PetscCall(PotentialEvaluate(V, 2, xp, vp, NULL));
        fd = (vp[0] - vp[1]) / (2 * eps);
        EXPECT(PetscAbsReal(g[b * D + k] - fd) <= 1e-6 * PetscMax(PetscAbsReal(fd), 1) + 1e-9 * PetscMax(1, PetscAbsReal(v1[b])) / PetscMax(1e-3, eps), "minibatch grad V at point %d, component %d: %.10g, finite difference %.10g", (int)b, (int)k, (double)g[b * D + k], (double)fd);
      }
    for (PetscInt it = 0; it < nk; it++) {
      PetscCall(PotentialSetIteration(V, 1, it));
      PetscCall(PotentialEvaluate(V, np, pts, v1, NULL));
      for (PetscInt b = 0; b < np; b++) mean[b] += v1[b] / nk, sq[b] += v1[b] * v1[b] / nk;
    }
    for (PetscInt b = 0; b < np; b++) {
      PetscReal se = PetscSqrtReal(PetscMax(sq[b] - mean[b] * mean[b], 0) / nk);
      EXPECT(PetscAbsReal(mean[b] - vf[b]) <= 5 * se + 1e-12 * PetscAbsReal(vf[b]), "minibatch V at point %d: mean over %d draws %.10g, whole data %.10g (se %.3g): biased", (int)b, (int)nk, (double)mean[b], (double)vf[b], (double)se);
    }
    PetscCall(ProblemDestroy(&p));
  }
  PetscFunctionReturn(0);
}

/* composite Simpson weight of node i of 0..n (n even) */
static inline PetscReal simpson(PetscInt i, PetscInt n)
{
  return (i == 0 || i == n) ? 1.0 / 3 : (i % 2 ? 4.0 / 3 : 2.0 / 3);
}

static PetscErrorCode test_prior(void)
{
  PetscReal X[NROWS * 3], y[NROWS];
  Problem   p;
  Measure   rho0 = {0};

  PetscFunctionBegin;
  /* d = 1: the density integrates to one; the CDF of a of the draws is the density's */
  {
    const PetscInt  na = 8000, nw = 600, N = 200000, nq = 5;
    const PetscReal c = 8, ha = 2 * c / na, qs[5] = {-7, -5.5, -4.6, -3, 0};
    PetscReal       total = 0, cdf[5] = {0}, *x, *lp, wl[601 * 2], ll[601], cnt[5] = {0};
    PetscCall(write_data("test_blr_d1.h5", 1, X, y));
    PetscCall(blr_problem("test_blr_d1.h5", "800", &p));
    PetscCall(ProblemCreateInitial(p, &rho0));
    EXPECT(rho0.dim == 2, "rho_0 of d = 1 has dimension %" PetscInt_FMT ", expected 2", rho0.dim);
    for (PetscInt i = 0; i <= na; i++) {
      PetscReal a = -c + i * ha, s = PetscExpReal(-0.5 * a), L = 14 * s, hw = 2 * L / nw, inner = 0;
      for (PetscInt j = 0; j <= nw; j++) wl[2 * j] = -L + j * hw, wl[2 * j + 1] = a;
      PetscCall(rho0.logdensity(rho0.ctx, nw + 1, wl, ll, NULL));
      for (PetscInt j = 0; j <= nw; j++) inner += simpson(j, nw) * hw * PetscExpReal(ll[j]);
      total += simpson(i, na) * ha * inner;
      for (PetscInt q = 0; q < nq; q++) /* the CDF at q: the same rule on [-c, q] (q on the grid) */
        if (a <= qs[q] + 1e-12) {
          PetscInt nqi = (PetscInt)round((qs[q] + c) / ha);
          cdf[q] += (i == 0 || i == nqi ? 1.0 / 3 : (i % 2 ? 4.0 / 3 : 2.0 / 3)) * ha * inner;
        }
    }
    EXPECT(PetscAbsReal(total - 1) < 1e-6, "d = 1: the log density of rho_0 integrates to %.10f, not 1", (double)total);
    PetscCall(PetscMalloc2(N * 2, &x, N, &lp));
    PetscCall(rho0.sample(rho0.ctx, 3, RNG_EVAL, 1, 0, 0, N, x, lp));
    for (PetscInt i = 0; i < N; i++) {
      EXPECT(x[2 * i + 1] >= -c && x[2 * i + 1] <= c, "draw %d: a = %g outside [-8, 8]", (int)i, (double)x[2 * i + 1]);
      for (PetscInt q = 0; q < nq; q++) cnt[q] += x[2 * i + 1] <= qs[q] ? 1 : 0;
    }
    for (PetscInt q = 0; q < nq; q++) {
      PetscReal f = cnt[q] / N, se = PetscSqrtReal(PetscMax(cdf[q] * (1 - cdf[q]), 1.0 / N) / N);
      EXPECT(PetscAbsReal(f - cdf[q]) <= 5 * se, "d = 1: P(a <= %g) of the draws %.5f, of the density %.5f (se %.2g)", (double)qs[q], (double)f, (double)cdf[q], (double)se);
    }
    PetscCall(PetscFree2(x, lp));
    PetscCall(MeasureDestroy(&rho0));
    PetscCall(ProblemDestroy(&p));
  }
  /* d = 3: alpha |w|^2 ~ chi^2_3; logp of the draws = the log density at them */
  {
    const PetscInt N = 100000, d = 3, D = 4;
    PetscReal     *x, *lp, *lq, m = 0, e = 0;
    PetscCall(blr_problem("test_blr_d3.h5", "800", &p));
    PetscCall(ProblemCreateInitial(p, &rho0));
    PetscCall(PetscMalloc3(N * D, &x, N, &lp, N, &lq));
    PetscCall(rho0.sample(rho0.ctx, 4, RNG_EVAL, 2, 1, 0, N, x, lp));
    PetscCall(rho0.logdensity(rho0.ctx, N, x, lq, NULL));
    for (PetscInt i = 0; i < N; i++) {
      PetscReal w2 = 0;
      for (PetscInt j = 0; j < d; j++) w2 += x[i * D + j] * x[i * D + j];
      m += PetscExpReal(x[i * D + d]) * w2 / N;
      e = PetscMax(e, PetscAbsReal(lp[i] - lq[i]));
    }
    EXPECT(PetscAbsReal(m - d) <= 5 * PetscSqrtReal(2.0 * d / N), "d = 3: mean of alpha |w|^2 over the draws %.4f, expected %d (se %.3g)", (double)m, (int)d, (double)PetscSqrtReal(2.0 * d / N));
    EXPECT(e == 0, "d = 3: the logp of the draws differs from the log density at them by %g", (double)e);
    PetscCall(PetscFree3(x, lp, lq));
    PetscCall(MeasureDestroy(&rho0));
    PetscCall(ProblemDestroy(&p));
  }
  PetscFunctionReturn(0);
}

/* A change of coordinates (noncentred or whitened) against theta: T^{-1}(T(u)) = u, log |det DT|
   against finite differences, V_u = V(T(u)) - log |det DT(u)| and its gradient, rho_0's draws and
   densities in u against those in theta. The last coordinate of the points: a (noncentred), v
   (whitened), from one tail to the other. */
static PetscErrorCode test_coordinates(const char coords[])
{
  const PetscInt  d = 3, D = 4, np = 8, N = 1000;
  const PetscBool white = !strcmp(coords, "whitened");
  const PetscReal as[8] = {-8, -7.999, 8, 7.9, -8.2, 8.3, -2, 0.5};
  PetscReal       u[8 * 4], th[8 * 4], back[8 * 4], ld[8], vu[8], vt[8], g[8 * 4], xp[2 * 4], tp[2 * 4], vp[2], J[16], e = 0;
  PetscReal      *xc, *xn, *lc, *ln, *lq, *ldn;
  Problem         pc, pn;
  Potential       Vc, Vn;
  Coordinates     cc, cn;
  Measure         rc = {0}, rn = {0};

  PetscFunctionBegin;
  for (PetscInt b = 0; b < np; b++) {
    for (PetscInt j = 0; j < d; j++) u[b * D + j] = 0.7 * PetscCosReal(1.7 * b + j) * (b % 3 ? 1 : 3) * (white && b == 6 ? 1e-9 : white && b == 3 ? 8 : 1); /* whitened: rho -> 0, and rho = 21 (Q(d/2, rho^2/2) ~ 1e-94) */
    u[b * D + d] = as[b];
  }
  PetscCall(blr_problem_in("test_blr_d3.h5", "1000", "theta", &pc));
  PetscCall(blr_problem_in("test_blr_d3.h5", "1000", coords, &pn));
  PetscCall(ProblemCreateCoordinates(pc, &cc));
  PetscCall(ProblemCreateCoordinates(pn, &cn));
  EXPECT(!cc.forward && !cc.inverse, "-blr_coordinates theta: the coordinates are not the identity");
  EXPECT(cn.forward && cn.inverse, "-blr_coordinates %s: no change of coordinates", coords);
  if (!cn.forward) PetscFunctionReturn(0);
  /* T, T^{-1} and log |det DT| */
  PetscCall(cn.forward(cn.ctx, np, u, th, ld));
  PetscCall(cn.inverse(cn.ctx, np, th, back));
  for (PetscInt b = 0; b < np; b++) {
    for (PetscInt k = 0; k < D; k++) {
      EXPECT(PetscAbsReal(back[b * D + k] - u[b * D + k]) <= (white ? 1e-12 : 1e-14) * PetscMax(1, PetscAbsReal(u[b * D + k])), "%s: T^{-1}(T(u)) at point %d component %d: %.17g, u %.17g", coords, (int)b, (int)k, (double)back[b * D + k], (double)u[b * D + k]);
      EXPECT(white || k < d || th[b * D + k] == u[b * D + k], "T changes log alpha at point %d", (int)b);
    }
    for (PetscInt k = 0; k < D; k++) { /* column k of the Jacobian, central differences */
      PetscReal eps = 1e-6;
      for (PetscInt s = 0; s < 2; s++) {
        PetscCall(PetscArraycpy(xp + s * D, u + b * D, D));
        xp[s * D + k] += s ? -eps : eps;
      }
      PetscCall(cn.forward(cn.ctx, 2, xp, tp, NULL));
      for (PetscInt i = 0; i < D; i++) J[i * D + k] = (tp[i] - tp[D + i]) / (2 * eps);
    }
    {
      PetscReal fd = logabsdet(D, J);
      EXPECT(PetscAbsReal(ld[b] - fd) <= 1e-6 * PetscMax(1, PetscAbsReal(fd)), "%s: log |det DT| at point %d (last coordinate %g): %.10g, of the finite-difference Jacobian %.10g", coords, (int)b, (double)as[b], (double)ld[b], (double)fd);
    }
  }
  /* V_u = V(T(u)) - log |det DT(u)|, and its gradient by finite differences */
  PetscCall(ProblemGetPotential(pc, &Vc));
  PetscCall(ProblemGetPotential(pn, &Vn));
  PetscCall(PotentialEvaluate(Vn, np, u, vu, g));
  PetscCall(PotentialEvaluate(Vc, np, th, vt, NULL));
  for (PetscInt b = 0; b < np; b++) {
    EXPECT(PetscAbsReal(vu[b] - (vt[b] - ld[b])) <= 1e-12 * PetscMax(1, PetscAbsReal(vt[b])), "%s: V_u at point %d (last coordinate %g): %.17g, V(T(u)) - log det %.17g", coords, (int)b, (double)as[b], (double)vu[b], (double)(vt[b] - ld[b]));
    for (PetscInt k = 0; k < D; k++) {
      PetscReal eps = 1e-6 * PetscMax(1, PetscAbsReal(u[b * D + k])), fd;
      for (PetscInt s = 0; s < 2; s++) {
        PetscCall(PetscArraycpy(xp + s * D, u + b * D, D));
        xp[s * D + k] += s ? -eps : eps;
      }
      PetscCall(PotentialEvaluate(Vn, 2, xp, vp, NULL));
      fd = (vp[0] - vp[1]) / (2 * eps);
      EXPECT(PetscAbsReal(g[b * D + k] - fd) <= 1e-6 * PetscMax(PetscAbsReal(fd), 1) + 1e-9 * PetscMax(1, PetscAbsReal(vu[b])) / PetscMax(1e-3, eps), "%s: grad V_u at point %d (last coordinate %g), component %d: %.10g, finite difference %.10g", coords, (int)b, (double)as[b], (int)k, (double)g[b * D + k], (double)fd);
    }
  }
  /* rho_0: the same stream gives the theta draws once mapped by T; log densities differ by log det */
  PetscCall(ProblemCreateInitial(pc, &rc));
  PetscCall(ProblemCreateInitial(pn, &rn));
  PetscCall(PetscMalloc6(N * D, &xc, N * D, &xn, N, &lc, N, &ln, N, &lq, N, &ldn));
  PetscCall(rc.sample(rc.ctx, 4, RNG_EVAL, 2, 1, 0, N, xc, lc));
  PetscCall(rn.sample(rn.ctx, 4, RNG_EVAL, 2, 1, 0, N, xn, ln));
  PetscCall(rn.logdensity(rn.ctx, N, xn, lq, NULL));
  PetscCall(cn.forward(cn.ctx, N, xn, xn, ldn));
  for (PetscInt i = 0; i < N; i++) {
    for (PetscInt k = 0; k < D; k++) e = PetscMax(e, PetscAbsReal(xn[i * D + k] - xc[i * D + k]) / PetscMax(1, PetscAbsReal(xc[i * D + k])));
    EXPECT(ln[i] == lq[i], "rho_0 in u, draw %d: the logp of the draw %.17g, the log density at it %.17g", (int)i, (double)ln[i], (double)lq[i]);
    EXPECT(PetscAbsReal(ln[i] - ldn[i] - lc[i]) <= 1e-12 * PetscMax(1, PetscAbsReal(lc[i])), "rho_0, draw %d: log rho_0(u) - log det %.17g, log rho_0(theta) %.17g", (int)i, (double)(ln[i] - ldn[i]), (double)lc[i]);
  }
  EXPECT(e <= (white ? 1e-12 : 1e-14), "%s: rho_0: T(the draws in u) differ from the draws in theta by %g (relative)", coords, (double)e);
  PetscCall(PetscFree6(xc, xn, lc, ln, lq, ldn));
  PetscCall(MeasureDestroy(&rc));
  PetscCall(MeasureDestroy(&rn));
  PetscCall(CoordinatesDestroy(&cc));
  PetscCall(CoordinatesDestroy(&cn));
  PetscCall(ProblemDestroy(&pc));
  PetscCall(ProblemDestroy(&pn));
  PetscFunctionReturn(0);
}

static PetscErrorCode test_predictive(void)
{
  const PetscInt ns = 7, nr = 300, d = 3, D = 4; /* nr > one block of rows */
  PetscReal      th[7 * 4], X[300 * 3], yy[300], pp[300] = {0}, pm[300] = {0}, acc, ll, wacc = 0, wll = 0, err = 0;

  PetscFunctionBegin;
  for (PetscInt i = 0; i < ns * D; i++) th[i] = 2 * PetscSinReal(0.37 * i + 1);
  for (PetscInt i = 0; i < nr * d; i++) X[i] = PetscCosReal(0.11 * i * i + 0.5);
  for (PetscInt i = 0; i < nr; i++) yy[i] = i % 3 ? 1 : -1;
  PetscCall(BLRPredictAccumulate(D, ns, th, nr, X, pp, pm));
  for (PetscInt i = 0; i < nr; i++) {
    PetscReal p = 0, pt;
    for (PetscInt j = 0; j < ns; j++) {
      PetscReal z = 0;
      for (PetscInt k = 0; k < d; k++) z += th[j * D + k] * X[i * d + k];
      p += 1 / (1 + PetscExpReal(-z)) / ns;
    }
    err = PetscMax(err, PetscMax(PetscAbsReal(pp[i] / ns - p), PetscAbsReal(pm[i] / ns - (1 - p))));
    pt  = yy[i] > 0 ? p : 1 - p;
    wacc += (pt > 0.5 ? 1.0 : 0.0) / nr;
    wll += PetscLogReal(pt) / nr;
  }
  EXPECT(err < 1e-14, "predictive probabilities differ from the direct sums by %g", (double)err);
  PetscCall(BLRScore(nr, ns, pp, pm, yy, &acc, &ll));
  acc /= nr, ll /= nr;
  EXPECT(PetscAbsReal(acc - wacc) < 1e-12 && PetscAbsReal(ll - wll) < 1e-13, "BLRScore: accuracy %.6f log lik %.12f, direct %.6f %.12f", (double)acc, (double)ll, (double)wacc, (double)wll);
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(test_potential());
  PetscCall(test_prior());
  PetscCall(test_coordinates("noncentred"));
  PetscCall(test_coordinates("whitened"));
  PetscCall(test_predictive());
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "test_blr: %" PetscInt_FMT " failure(s)\n", nfail));
  PetscCall(PetscFinalize());
  return nfail ? 1 : 0;
}
