static const char help[] = "Filtering kernels (MATH.md secs 8, 10): Chang-Cooper against exp(-V)/Z and the Kalman filter, "
                           "the bootstrap particle filter against the Kalman filter and across rank counts, the grid KL against closed forms, bad input.\n";

#include <wgf/filter.h>
#include <wgf/util.h>
#include <petsctime.h>
#include "wgf_test.h"

static PetscMPIInt rank, size;

/* ---------------------------------------------------------------- potentials */

/* The paper's filtering potential (MATH.md sec. 8): V = sin(2 pi x)/pi + x^2/4,
   V' = 2 cos(2 pi x) + x/2. */
static PetscErrorCode paper_evaluate(void *ctx, PetscInt n, const PetscReal x[], PetscReal v[], PetscReal grad[])
{
  PetscFunctionBegin;
  (void)ctx;
  for (PetscInt i = 0; i < n; i++) {
    if (v) v[i] = PetscSinReal(2 * PETSC_PI * x[i]) / PETSC_PI + 0.25 * x[i] * x[i];
    if (grad) grad[i] = 2 * PetscCosReal(2 * PETSC_PI * x[i]) + 0.5 * x[i];
  }
  PetscFunctionReturn(0);
}

static PetscErrorCode paper_potential(Potential *V)
{
  PotentialShellOps ops = {.evaluate = paper_evaluate};

  PetscFunctionBegin;
  PetscCall(PotentialCreateShell(PETSC_COMM_SELF, 1, &ops, V));
  PetscFunctionReturn(0);
}

/* N(x; m, s^2) at the n centres of [xmin, xmin + n dx] */
static void gaussian_grid(PetscInt n, PetscReal xmin, PetscReal dx, PetscReal m, PetscReal s2, PetscReal p[])
{
  for (PetscInt i = 0; i < n; i++) {
    PetscReal x = xmin + (i + 0.5) * dx;
    p[i]        = PetscExpReal(-0.5 * (x - m) * (x - m) / s2) / PetscSqrtReal(2 * PETSC_PI * s2);
  }
}

/* ---------------------------------------------------------------- a: stationary state */

/* Chang-Cooper's stationary state is exp(-beta V)/Z on the grid up to the midpoint rule of V'
   at the faces: log p_{i+1} - log p_i = -V'(x_{i+1/2}) dx = -(V_{i+1} - V_i) + V''' dx^3/24, so
   the relative error is about dx^2/24 (V''(x) - its mean) <= 2.5e-5 / 24 * 4 pi ~ 1.3e-5 for
   this V. Backward Euler with dt = 10 reaches it in 100 steps. */
/* Chang-Cooper with n cells on [xmin, xmax] from N(0, 1) to the nt times tout (dt = 10): err [nt],
   the max relative error to exp(-V)/Z on the grid where that exceeds 1e-6 of its max; pout
   [nt][n] (PetscMalloc'd, the caller frees) and, if not NULL, ref_ratio = the smallest
   exp(-V)/Z compared over its max. */
static PetscErrorCode stationary_error(Potential V, PetscInt n, PetscReal xmin, PetscReal xmax, PetscInt nt, const PetscReal tout[], PetscReal err[], PetscReal **pout, PetscReal *ref_ratio)
{
  const PetscReal dx = (xmax - xmin) / n;
  PetscReal      *p0, *ref, Z = 0, pmax = 0;

  PetscFunctionBegin;
  PetscCall(PetscMalloc2(n, &p0, n, &ref));
  PetscCall(PetscMalloc1(nt * n, pout));
  gaussian_grid(n, xmin, dx, 0, 1, p0);
  for (PetscInt i = 0; i < n; i++) ref[i] = xmin + (i + 0.5) * dx;
  PetscCall(PotentialEvaluate(V, n, ref, ref, NULL));
  for (PetscInt i = 0; i < n; i++) {
    ref[i] = PetscExpReal(-ref[i]);
    Z += ref[i] * dx;
    pmax = PetscMax(pmax, ref[i]);
  }
  PetscCall(FilterChangCooper(V, 1.0, xmin, xmax, n, 10.0, p0, 0, NULL, NULL, 1.0, nt, tout, *pout));
  for (PetscInt k = 0; k < nt; k++) {
    err[k] = 0;
    for (PetscInt i = 0; i < n; i++)
      if (ref[i] > 1e-6 * pmax) err[k] = PetscMax(err[k], PetscAbsReal((*pout)[k * n + i] - ref[i] / Z) / (ref[i] / Z));
  }
  if (ref_ratio) {
    *ref_ratio = 1;
    for (PetscInt i = 0; i < n; i++)
      if (ref[i] > 1e-6 * pmax) *ref_ratio = PetscMin(*ref_ratio, ref[i] / pmax);
  }
  PetscCall(PetscFree2(p0, ref));
  PetscFunctionReturn(0);
}

static PetscErrorCode check_stationary(void)
{
  const PetscInt  n = 2000;
  const PetscReal xmin = -5, xmax = 5, dx = (xmax - xmin) / n, tout[2] = {100, 1000};
  Potential       V;
  PetscReal      *pout, *pout2, *x, e[2], e2, ratio, l = 0, Zd = 0, errd = 0, xf, g;

  PetscFunctionBegin;
  PetscCall(paper_potential(&V));
  PetscCall(stationary_error(V, n, xmin, xmax, 2, tout, e, &pout, &ratio));
  /* half the cell width: the error to exp(-V)/Z should fall by about 4 */
  PetscCall(stationary_error(V, 2 * n, xmin, xmax, 1, tout + 1, &e2, &pout2, NULL));
  /* the scheme's own equilibrium: B(-P)/B(P) = e^P, so p_{i+1}/p_i = exp(-V'(x_{i+1/2}) dx) */
  PetscCall(PetscMalloc1(n, &x));
  for (PetscInt i = 0; i < n; i++) {
    if (i > 0) {
      xf = xmin + i * dx;
      PetscCall(PotentialEvaluate(V, 1, &xf, NULL, &g));
      l -= g * dx;
    }
    x[i] = PetscExpReal(l);
    Zd += x[i] * dx;
  }
  for (PetscInt i = 0; i < n; i++) errd = PetscMax(errd, PetscAbsReal(pout[n + i] - x[i] / Zd) / (x[i] / Zd));
  if (!rank) {
    PetscCall(PetscPrintf(PETSC_COMM_SELF, "a. stationary state, dx %g: max relative error to exp(-V)/Z %.3e (t = 100: %.3e; cells with exp(-V)/Z > 1e-6 max, min/max %.2e)\n", (double)dx, (double)e[1], (double)e[0], (double)ratio));
    PetscCall(PetscPrintf(PETSC_COMM_SELF, "   to the scheme's own equilibrium exp(-sum V'(faces) dx)/Z: %.3e; dx %g: to exp(-V)/Z %.3e (ratio %.2f)\n", (double)errd, (double)(dx / 2), (double)e2, (double)(e[1] / e2)));
  }
  EXPECT(errd <= 1e-10, "Chang-Cooper's stationary state is %g from the scheme's own equilibrium (relative), expected <= 1e-10", (double)errd);
  EXPECT(e2 <= e[1] / 3.5 && e2 >= e[1] / 4.5, "halving dx takes the error to exp(-V)/Z from %g to %g, expected a factor about 4 (second order)", (double)e[1], (double)e2);
  EXPECT(e[1] <= 2e-5, "Chang-Cooper's stationary state is %g from exp(-V)/Z (relative), expected <= 2e-5 (about dx^2/24 (V'' - mean V''))", (double)e[1]);
  EXPECT(PetscAbsReal(e[1] - e[0]) <= 1e-9, "Chang-Cooper at t = 100 and t = 1000 differ (%g vs %g): not stationary yet", (double)e[0], (double)e[1]);
  PetscCall(PetscFree(x));
  PetscCall(PetscFree(pout));
  PetscCall(PetscFree(pout2));
  PetscCall(PotentialDestroy(&V));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- b: mass and positivity */

static PetscErrorCode check_mass(void)
{
  const PetscInt  n = 2000, nout = 5;
  const PetscReal xmin = -5, xmax = 5, dx = (xmax - xmin) / n, tout[5] = {0, 0.5, 2.0, 5.0, 10.0};
  Potential       V;
  PetscReal      *p0, *pout, merr = 0, pmin = PETSC_MAX_REAL;

  PetscFunctionBegin;
  PetscCall(paper_potential(&V));
  PetscCall(PetscMalloc2(n, &p0, nout * n, &pout));
  gaussian_grid(n, xmin, dx, 2.0, 0.04, p0); /* N(2, 0.2^2): far from equilibrium, tails underflow to ~1e-300 */
  for (PetscInt i = 0; i < n; i++) p0[i] *= 3.7; /* not normalised: FilterChangCooper normalises */
  PetscCall(FilterChangCooper(V, 1.0, xmin, xmax, n, 1e-3, p0, 0, NULL, NULL, 1.0, nout, tout, pout));
  for (PetscInt o = 0; o < nout; o++) {
    PetscReal m = 0;
    for (PetscInt i = 0; i < n; i++) {
      m += pout[o * n + i] * dx;
      if (o > 0) pmin = PetscMin(pmin, pout[o * n + i]);
    }
    merr = PetscMax(merr, PetscAbsReal(m - 1));
  }
  if (!rank) PetscCall(PetscPrintf(PETSC_COMM_SELF, "b. mass over 10000 steps of dt 1e-3: max |sum p dx - 1| %.3e, min p %.3e\n", (double)merr, (double)pmin));
  EXPECT(merr <= 1e-12, "mass drifts by %g over 10000 steps, expected <= 1e-12", (double)merr);
  EXPECT(pmin > 0, "the density reaches %g, expected > 0", (double)pmin);
  PetscCall(PetscFree2(p0, pout));
  PetscCall(PotentialDestroy(&V));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- c: the Kalman filter */

/* The linear-Gaussian model: V = x^2/2, beta = 1 (OU: X_{t+s} = e^{-s} X_t + N(0, 1 - e^{-2s})),
   X_0 ~ N(0, 1), y_j = X(t_j) + N(0, 1). */
#define KF_NOBS 4
static const PetscReal kf_tobs[KF_NOBS] = {0.5, 1.0, 1.5, 2.0}, kf_yobs[KF_NOBS] = {0.8, -0.3, 1.1, 0.4}, kf_tfinal = 2.5, kf_sigma = 1.0;

/* The exact filter at tfinal: mean, variance and log evidence sum_j log N(y_j; m_j^-, P_j^- + sigma^2). */
static void kalman(PetscReal *mean, PetscReal *var, PetscReal *logev)
{
  PetscReal m = 0, P = 1, t = 0, R = kf_sigma * kf_sigma;

  *logev = 0;
  for (PetscInt j = 0; j <= KF_NOBS; j++) {
    PetscReal tn = j < KF_NOBS ? kf_tobs[j] : kf_tfinal, e = PetscExpReal(-(tn - t));
    m = e * m;
    P = e * e * P + (1 - e * e);
    t = tn;
    if (j < KF_NOBS) {
      PetscReal S = P + R, K = P / S, d = kf_yobs[j] - m;
      *logev += -0.5 * PetscLogReal(2 * PETSC_PI * S) - 0.5 * d * d / S;
      m += K * d;
      P = (1 - K) * P;
    }
  }
  *mean = m;
  *var  = P;
}

static PetscErrorCode quadratic_potential(MPI_Comm comm, Potential *V)
{
  const PetscReal A[1] = {1}, m[1] = {0};

  PetscFunctionBegin;
  PetscCall(PotentialCreateQuadratic(comm, 1, A, m, V));
  PetscFunctionReturn(0);
}

/* (i) Chang-Cooper on [-6, 6] (dx 5e-3, dt 1e-3) against the Kalman Gaussian at t = 2.5. */
static PetscErrorCode check_kalman_cc(void)
{
  const PetscInt  n = 2400;
  const PetscReal xmin = -6, xmax = 6, dx = (xmax - xmin) / n, tout[1] = {kf_tfinal};
  PetscReal       km, kv, kl, *p0, *p, *q, m = 0, v = 0, klpq, klqp, sym;
  Potential       V;
  PetscLogDouble  t0, t1;

  PetscFunctionBegin;
  kalman(&km, &kv, &kl);
  PetscCall(quadratic_potential(PETSC_COMM_SELF, &V));
  PetscCall(PetscMalloc3(n, &p0, n, &p, n, &q));
  gaussian_grid(n, xmin, dx, 0, 1, p0);
  PetscCall(PetscTime(&t0));
  PetscCall(FilterChangCooper(V, 1.0, xmin, xmax, n, 1e-3, p0, KF_NOBS, kf_tobs, kf_yobs, kf_sigma, 1, tout, p));
  PetscCall(PetscTime(&t1));
  for (PetscInt i = 0; i < n; i++) m += (xmin + (i + 0.5) * dx) * p[i] * dx;
  for (PetscInt i = 0; i < n; i++) v += PetscSqr(xmin + (i + 0.5) * dx - m) * p[i] * dx;
  gaussian_grid(n, xmin, dx, km, kv, q);
  PetscCall(FilterGridKL(n, dx, p, q, &klpq, &klqp, &sym));
  if (!rank)
    PetscCall(PetscPrintf(PETSC_COMM_SELF, "c(i). Chang-Cooper vs Kalman at t = 2.5 (Kalman mean %.6f, var %.6f): mean error %.3e, variance error %.3e, KL(cc||kf) %.3e, KL(kf||cc) %.3e, SymKL %.3e (%.2f s)\n", (double)km, (double)kv, (double)(m - km), (double)(v - kv), (double)klpq, (double)klqp, (double)sym, (double)(t1 - t0)));
  EXPECT(PetscAbsReal(m - km) <= 1e-3, "Chang-Cooper mean %g, Kalman %g: error above 1e-3", (double)m, (double)km);
  EXPECT(PetscAbsReal(v - kv) <= 1e-3, "Chang-Cooper variance %g, Kalman %g: error above 1e-3", (double)v, (double)kv);
  EXPECT(sym <= 1e-6 && klpq >= 0 && klqp >= 0, "SymKL between Chang-Cooper and the Kalman density %g (KLs %g, %g), expected in [0, 1e-6]", (double)sym, (double)klpq, (double)klqp);
  /* an observation at t = 0 applies to p0: N(0, 1) times N(y; x, 1) is N(y/2, 1/2) */
  {
    const PetscReal t0s[1] = {0}, y0[1] = {1.3};
    PetscReal       m0 = 0, v0 = 0, kl0;
    PetscCall(FilterChangCooper(V, 1.0, xmin, xmax, n, 1e-3, p0, 1, t0s, y0, 1.0, 1, t0s, p));
    gaussian_grid(n, xmin, dx, 0.65, 0.5, q);
    for (PetscInt i = 0; i < n; i++) m0 += (xmin + (i + 0.5) * dx) * p[i] * dx;
    for (PetscInt i = 0; i < n; i++) v0 += PetscSqr(xmin + (i + 0.5) * dx - m0) * p[i] * dx;
    PetscCall(FilterGridKL(n, dx, p, q, NULL, NULL, &kl0));
    if (!rank) PetscCall(PetscPrintf(PETSC_COMM_SELF, "c(0). Chang-Cooper, one observation at t = 0 and output at 0: mean error %.2e, variance error %.2e, SymKL %.2e\n", (double)(m0 - 0.65), (double)(v0 - 0.5), (double)kl0));
    EXPECT(PetscAbsReal(m0 - 0.65) <= 1e-10 && PetscAbsReal(v0 - 0.5) <= 1e-5 && kl0 <= 1e-10, "an observation at t = 0: mean %g (expected 0.65), variance %g (0.5), SymKL %g", (double)m0, (double)v0, (double)kl0);
  }
  PetscCall(PetscFree3(p0, p, q));
  PetscCall(PotentialDestroy(&V));
  PetscFunctionReturn(0);
}

/* (ii) and (iii): the particle filter on PETSC_COMM_WORLD against the Kalman filter, and against a
   1-rank run on PETSC_COMM_SELF (rank 0) particle by particle. */
static PetscErrorCode check_kalman_pf(void)
{
  const PetscInt  N = 20000;
  const PetscReal dt = 1e-3;
  const uint32_t  seed = 20240611;
  PetscReal       km, kv, kl, *x, *xs = NULL, *xall = NULL, lz, lzs = 0, sum[2] = {0, 0}, gsum[2], m, v, se_m, se_v, neff = 0.8 * N;
  PetscReal       mean0[1] = {0}, cov0[1] = {1};
  PetscInt        first, n, fs, ns;
  PetscMPIInt    *cnt = NULL, *dsp = NULL, nl;
  Gaussian        g;
  Measure         rho0;
  Potential       V;
  PetscLogDouble  t0, t1, t2 = 0, t3 = 0;

  PetscFunctionBegin;
  kalman(&km, &kv, &kl);
  PetscCall(quadratic_potential(PETSC_COMM_WORLD, &V));
  PetscCall(GaussianCreate(1, mean0, cov0, &g));
  PetscCall(MeasureCreateGaussian(&g, &rho0));
  PetscCallMPI(MPI_Barrier(PETSC_COMM_WORLD));
  PetscCall(PetscTime(&t0));
  PetscCall(FilterParticleFilter(PETSC_COMM_WORLD, V, 1.0, &rho0, N, dt, seed, KF_NOBS, kf_tobs, kf_yobs, kf_sigma, kf_tfinal, &first, &n, &x, &lz));
  PetscCallMPI(MPI_Barrier(PETSC_COMM_WORLD));
  PetscCall(PetscTime(&t1));
  for (PetscInt i = 0; i < n; i++) sum[0] += x[i];
  PetscCallMPI(MPI_Allreduce(sum, gsum, 1, MPIU_REAL, MPI_SUM, PETSC_COMM_WORLD));
  m = gsum[0] / N;
  for (PetscInt i = 0; i < n; i++) sum[1] += PetscSqr(x[i] - m);
  PetscCallMPI(MPI_Allreduce(sum + 1, gsum + 1, 1, MPIU_REAL, MPI_SUM, PETSC_COMM_WORLD));
  v = gsum[1] / (N - 1);
  /* Monte Carlo standard errors with N_eff = 0.8 N: the weights of one observation have an ESS of
     about N E[w]^2/E[w^2] ~ 0.8 N here (prior variance ~0.6, sigma 1), and the resampled copies
     decorrelate between observations. Measured over 20 seeds of this run: the mean's sd 0.0066
     (sd/sqrt(N) = 0.0063, N_eff 0.92 N), the variance's 0.0068, the log evidence's 0.010, and the
     20-seed averages within 1 standard error of the Kalman values (mean 0.20759, var 0.79442,
     log evidence -5.48674). */
  se_m = PetscSqrtReal(kv / neff);
  se_v = kv * PetscSqrtReal(2 / neff);
  EXPECT(first >= 0 && n >= 0, "FilterParticleFilter returned first %" PetscInt_FMT ", n %" PetscInt_FMT, first, n);
  EXPECT(PetscAbsReal(m - km) <= 4 * se_m, "particle filter mean %g, Kalman %g: error %g above 4 standard errors (%g)", (double)m, (double)km, (double)(m - km), (double)(4 * se_m));
  EXPECT(PetscAbsReal(v - kv) <= 4 * se_v, "particle filter variance %g, Kalman %g: error %g above 4 standard errors (%g)", (double)v, (double)kv, (double)(v - kv), (double)(4 * se_v));
  EXPECT(PetscAbsReal(lz - kl) <= 0.04, "particle filter log evidence %g, Kalman %g: error above 0.04 (4 measured sd)", (double)lz, (double)kl);

  /* (iii) rank invariance: rank 0 runs the same filter alone */
  if (!rank) {
    PetscCall(PetscTime(&t2));
    PetscCall(FilterParticleFilter(PETSC_COMM_SELF, V, 1.0, &rho0, N, dt, seed, KF_NOBS, kf_tobs, kf_yobs, kf_sigma, kf_tfinal, &fs, &ns, &xs, &lzs));
    PetscCall(PetscTime(&t3));
    EXPECT(fs == 0 && ns == N, "the 1-rank particle filter returned first %" PetscInt_FMT ", n %" PetscInt_FMT ", expected 0, %" PetscInt_FMT, fs, ns, N);
    PetscCall(PetscMalloc3(N, &xall, size, &cnt, size, &dsp));
  }
  PetscCall(PetscMPIIntCast(n, &nl));
  PetscCallMPI(MPI_Gather(&nl, 1, MPI_INT, cnt, 1, MPI_INT, 0, PETSC_COMM_WORLD));
  if (!rank) {
    dsp[0] = 0;
    for (PetscMPIInt r = 1; r < size; r++) dsp[r] = dsp[r - 1] + cnt[r - 1];
  }
  PetscCallMPI(MPI_Gatherv(x, nl, MPIU_REAL, xall, cnt, dsp, MPIU_REAL, 0, PETSC_COMM_WORLD));
  if (!rank) {
    PetscReal e = relerr(N, xall, xs);
    PetscCall(PetscPrintf(PETSC_COMM_SELF, "c(ii). particle filter, N %" PetscInt_FMT ", dt %g, %d ranks: mean %.5f (error %.2e, 4 se %.2e), variance %.5f (error %.2e, 4 se %.2e), log evidence %.5f (Kalman %.5f, error %.2e); %.2f s (the 1-rank run %.2f s)\n", N, (double)dt, (int)size, (double)m, (double)(m - km), (double)(4 * se_m), (double)v, (double)(v - kv), (double)(4 * se_v), (double)lz, (double)kl, (double)(lz - kl), (double)(t1 - t0), (double)(t3 - t2)));
    PetscCall(PetscPrintf(PETSC_COMM_SELF, "c(iii). %d ranks vs 1 rank: particles max relative difference %.3e, log evidence difference %.3e\n", (int)size, (double)e, (double)(lz - lzs)));
    EXPECT(e <= 1e-12, "the particles on %d ranks differ from those of 1 rank by %g (relative), expected <= 1e-12", (int)size, (double)e);
    EXPECT(PetscAbsReal(lz - lzs) <= 1e-12 * PetscAbsReal(lzs), "the log evidence on %d ranks %.17g differs from that of 1 rank %.17g", (int)size, (double)lz, (double)lzs);
    PetscCall(PetscFree3(xall, cnt, dsp));
    PetscCall(PetscFree(xs));
  }
  PetscCall(PetscFree(x));
  /* an observation at t = 0 and tfinal = 0 (no move): N(0, 1) times N(y; x, 1) is N(y/2, 1/2),
     with evidence N(y; 0, 2) */
  {
    const PetscReal t0s[1] = {0}, y0[1] = {1.3}, lev = -0.5 * PetscLogReal(4 * PETSC_PI) - 1.3 * 1.3 / 4;
    PetscReal       s0 = 0, m0;
    PetscCall(FilterParticleFilter(PETSC_COMM_WORLD, V, 1.0, &rho0, N, dt, seed, 1, t0s, y0, 1.0, 0.0, &first, &n, &x, &lz));
    for (PetscInt i = 0; i < n; i++) s0 += x[i];
    PetscCallMPI(MPI_Allreduce(&s0, &m0, 1, MPIU_REAL, MPI_SUM, PETSC_COMM_WORLD));
    m0 /= N;
    if (!rank) PetscCall(PetscPrintf(PETSC_COMM_SELF, "c(0). particle filter, one observation at t = 0 = tfinal: mean error %.2e (4 se %.2e), log evidence error %.2e\n", (double)(m0 - 0.65), (double)(4 * PetscSqrtReal(0.5 / neff)), (double)(lz - lev)));
    EXPECT(PetscAbsReal(m0 - 0.65) <= 4 * PetscSqrtReal(0.5 / neff), "particle filter with one observation at t = 0: mean %g, expected 0.65", (double)m0);
    EXPECT(PetscAbsReal(lz - lev) <= 0.04, "particle filter with one observation at t = 0: log evidence %g, expected %g", (double)lz, (double)lev);
    PetscCall(PetscFree(x));
  }
  PetscCall(MeasureDestroy(&rho0));
  PetscCall(PotentialDestroy(&V));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- d: grid KL */

/* KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2 */
static PetscReal kl_gauss(PetscReal m1, PetscReal s1, PetscReal m2, PetscReal s2)
{
  return PetscLogReal(s2 / s1) + (s1 * s1 + (m1 - m2) * (m1 - m2)) / (2 * s2 * s2) - 0.5;
}

static PetscErrorCode check_kl(void)
{
  const PetscInt  n = 40000;
  const PetscReal xmin = -20, dx = 40.0 / n, m1 = 0.3, s1 = 0.8, m2 = -0.5, s2 = 1.7;
  PetscReal      *p, *q, a, b, s, ea, eb, z3[3] = {1, 0, 1}, o3[3] = {1, 1, 1};

  PetscFunctionBegin;
  PetscCall(PetscMalloc2(n, &p, n, &q));
  gaussian_grid(n, xmin, dx, m1, s1 * s1, p);
  gaussian_grid(n, xmin, dx, m2, s2 * s2, q);
  for (PetscInt i = 0; i < n; i++) q[i] *= 5; /* normalisation is FilterGridKL's job */
  PetscCall(FilterGridKL(n, dx, p, q, &a, &b, &s));
  ea = PetscAbsReal(a - kl_gauss(m1, s1, m2, s2));
  eb = PetscAbsReal(b - kl_gauss(m2, s2, m1, s1));
  if (!rank) PetscCall(PetscPrintf(PETSC_COMM_SELF, "d. grid KL of two Gaussians (dx %g): KL(p||q) %.10f (error %.2e), KL(q||p) %.10f (error %.2e)\n", (double)dx, (double)a, (double)ea, (double)b, (double)eb));
  EXPECT(ea <= 1e-9 && eb <= 1e-9, "grid KL errors %g and %g to the closed forms, expected <= 1e-9", (double)ea, (double)eb);
  EXPECT(PetscAbsReal(s - (a + b)) <= 1e-14 * s, "SymKL %g is not the sum of the two KLs %g + %g", (double)s, (double)a, (double)b);
  PetscCall(FilterGridKL(n, dx, p, p, &a, NULL, NULL));
  EXPECT(PetscAbsReal(a) <= 1e-15, "KL(p||p) = %g, expected 0", (double)a);
  /* zero cells (as the paper's code, no floor): q = 0 < p gives +inf, p = 0 adds nothing */
  PetscCall(FilterGridKL(3, 1.0, o3, z3, &a, &b, NULL));
  EXPECT(PetscIsInfReal(a) && a > 0, "KL(p||q) with q = 0 < p in a cell is %g, expected +inf", (double)a);
  EXPECT(PetscAbsReal(b - PetscLogReal(1.5)) <= 1e-15, "KL(q||p) with p = 1/3 everywhere and q = 1/2, 0, 1/2 is %g, expected log(3/2)", (double)b);
  PetscCall(PetscFree2(p, q));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- e: bad input */

static PetscErrorCode check_errors(void)
{
  const PetscInt  n = 100;
  const PetscReal dt = 1e-2, tout[2] = {0.5, 1.0}, tobs_down[2] = {0.6, 0.4}, tobs_same[2] = {0.4, 0.4}, tobs[2] = {0.2, 0.4}, y[2] = {0.1, 0.2};
  const PetscReal tout_off[2] = {0.5, 1.0015}, tobs_off[2] = {0.2, 0.405}, tobs_late[2] = {0.2, 1.1}, yfar[2] = {1e3, 0}, m0[1] = {0}, c0[1] = {1};
  PetscReal       p0[100], pout[200], a, *x = NULL;
  PetscInt        first, nl;
  Potential       V, VW;
  Gaussian        g;
  Measure         rho0;
  PetscErrorCode  ierr;

  PetscFunctionBegin;
  PetscCall(paper_potential(&V));
  PetscCall(quadratic_potential(PETSC_COMM_WORLD, &VW));
  PetscCall(GaussianCreate(1, m0, c0, &g));
  PetscCall(MeasureCreateGaussian(&g, &rho0));
  gaussian_grid(n, -5, 0.1, 0, 1, p0);
  /* the good call works, so that each error below is the bad argument's */
  ierr = FilterChangCooper(V, 1, -5, 5, n, dt, p0, 2, tobs, y, 1, 2, tout, pout);
  EXPECT(ierr == 0, "FilterChangCooper with good input gave error code %d", (int)ierr);
  PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));
  ierr = FilterChangCooper(V, 1, -5, 5, n, dt, p0, 2, tobs_down, y, 1, 2, tout, pout);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper with decreasing observation times gave error code %d", (int)ierr);
  ierr = FilterChangCooper(V, 1, -5, 5, n, dt, p0, 2, tobs_same, y, 1, 2, tout, pout);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper with equal observation times gave error code %d", (int)ierr);
  ierr = FilterChangCooper(V, 1, -5, 5, n, dt, p0, 2, tobs, y, 1, 2, tout_off, pout);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper with an output time off the dt grid gave error code %d", (int)ierr);
  ierr = FilterChangCooper(V, 1, -5, 5, n, dt, p0, 2, tobs_off, y, 1, 2, tout, pout);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper with an observation time off the dt grid gave error code %d", (int)ierr);
  ierr = FilterChangCooper(V, 1, -5, 5, n, dt, p0, 2, tobs_late, y, 1, 2, tout, pout);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper with an observation after the last output gave error code %d", (int)ierr);
  ierr = FilterChangCooper(V, 1, -5, 5, n, dt, p0, 2, tobs, y, 1, 2, tobs_down, pout);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper with decreasing output times gave error code %d", (int)ierr);
  ierr = FilterChangCooper(V, 1, -5, 5, 1, dt, p0, 0, NULL, NULL, 1, 2, tout, pout);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper with 1 cell gave error code %d", (int)ierr);
  ierr = FilterChangCooper(V, 1, -5, 5, n, 0, p0, 0, NULL, NULL, 1, 2, tout, pout);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper with dt = 0 gave error code %d", (int)ierr);
  ierr = FilterChangCooper(V, 0, -5, 5, n, dt, p0, 0, NULL, NULL, 1, 2, tout, pout);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper with beta = 0 gave error code %d", (int)ierr);
  ierr = FilterChangCooper(V, 1, -5, 5, n, dt, p0, 2, tobs, y, 0, 2, tout, pout);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper with noise_std = 0 gave error code %d", (int)ierr);
  p0[7] = NAN;
  ierr  = FilterChangCooper(V, 1, -5, 5, n, dt, p0, 2, tobs, y, 1, 2, tout, pout);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper with a NaN in p0 gave error code %d", (int)ierr);
  p0[7] = -1;
  ierr  = FilterChangCooper(V, 1, -5, 5, n, dt, p0, 2, tobs, y, 1, 2, tout, pout);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper with a negative p0 gave error code %d", (int)ierr);
  gaussian_grid(n, -5, 0.1, 0, 1, p0);
  ierr = FilterChangCooper(V, 1, -5, 5, n, dt, p0, 2, tobs, yfar, 1, 2, tout, pout);
  EXPECT(ierr == PETSC_ERR_FP, "FilterChangCooper with an observation whose likelihood underflows on the grid gave error code %d", (int)ierr);
  ierr = FilterParticleFilter(PETSC_COMM_WORLD, VW, 1, &rho0, 100, dt, 1, 2, tobs_down, y, 1, 1.0, &first, &nl, &x, NULL);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE && x == NULL, "FilterParticleFilter with decreasing observation times gave error code %d", (int)ierr);
  ierr = FilterParticleFilter(PETSC_COMM_WORLD, VW, 1, &rho0, 100, dt, 1, 2, tobs_off, y, 1, 1.0, &first, &nl, &x, NULL);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE && x == NULL, "FilterParticleFilter with an observation time off the dt grid gave error code %d", (int)ierr);
  ierr = FilterParticleFilter(PETSC_COMM_WORLD, VW, 1, &rho0, 100, dt, 1, 2, tobs, y, 1, 1.0015, &first, &nl, &x, NULL);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE && x == NULL, "FilterParticleFilter with tfinal off the dt grid gave error code %d", (int)ierr);
  ierr = FilterParticleFilter(PETSC_COMM_WORLD, VW, 1, &rho0, 100, dt, 1, 2, tobs_late, y, 1, 1.0, &first, &nl, &x, NULL);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE && x == NULL, "FilterParticleFilter with an observation after tfinal gave error code %d", (int)ierr);
  ierr = FilterParticleFilter(PETSC_COMM_WORLD, VW, 1, &rho0, 0, dt, 1, 2, tobs, y, 1, 1.0, &first, &nl, &x, NULL);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE && x == NULL, "FilterParticleFilter with N = 0 gave error code %d", (int)ierr);
  p0[3] = -1e-3;
  ierr  = FilterGridKL(n, 0.1, p0, p0, &a, NULL, NULL);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterGridKL with a negative density gave error code %d", (int)ierr);
  ierr = FilterGridKL(n, 0, p0, p0, &a, NULL, NULL);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "FilterGridKL with dx = 0 gave error code %d", (int)ierr);
  PetscCall(PetscPopErrorHandler());
  PetscCall(MeasureDestroy(&rho0));
  PetscCall(PotentialDestroy(&VW));
  PetscCall(PotentialDestroy(&V));
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscInt total = 0;

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCallMPI(MPI_Comm_rank(PETSC_COMM_WORLD, &rank));
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  PetscCall(check_stationary());
  PetscCall(check_mass());
  PetscCall(check_kalman_cc());
  PetscCall(check_kalman_pf());
  PetscCall(check_kl());
  PetscCall(check_errors());

  PetscCall(wgf_test_summary(PETSC_COMM_WORLD, &total));
  PetscCall(PetscFinalize());
  return total ? 1 : 0;
}
